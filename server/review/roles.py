"""Who may do what in the supervisor workspace: each account has one ``Role``, each route needs one
``Permission``, and ``GRANTS`` is the whole table between them.

- supervisor: reviews stops (search, stop page, footage, verification, evidence export) and handles cases;
- auditor: reads everything a supervisor reads, changes nothing, and reads the access audit;
- admin: accounts and devices (the fleet view), and nothing of the evidence;
- the fines back office (fines by state, a fine's history, bailiff batches, reconciliation, publications) is read
  by supervisors and auditors.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    REVIEW = "review"  # search, the stop page, its footage and integrity verdicts, cases (read)
    VERIFY = "verify"  # run a verification of a stop's footage now
    EXPORT = "export"  # an evidence package
    CASES = "cases"  # open a case, attach files, move it through its states
    AUDIT = "audit"  # the whole access audit and its chain
    FLEET = "fleet"  # the devices: one row each, what needs attention first
    ACCOUNTS = "accounts"  # the accounts and their roles
    FINES = "fines"  # the fines back office (read)


GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.REVIEW: frozenset({Role.SUPERVISOR, Role.AUDITOR}),
    Permission.VERIFY: frozenset({Role.SUPERVISOR, Role.AUDITOR}),
    Permission.EXPORT: frozenset({Role.SUPERVISOR}),
    Permission.CASES: frozenset({Role.SUPERVISOR}),
    Permission.AUDIT: frozenset({Role.AUDITOR}),
    Permission.FLEET: frozenset({Role.ADMIN, Role.AUDITOR}),
    Permission.ACCOUNTS: frozenset({Role.ADMIN}),
    Permission.FINES: frozenset({Role.SUPERVISOR, Role.AUDITOR}),
}

ROLE_LABELS = {
    Role.SUPERVISOR: "проверяющий / supervisor",
    Role.AUDITOR: "аудитор / auditor",
    Role.ADMIN: "администратор / admin",
}


def allowed(role: str, permission: Permission) -> bool:
    """Whether an account of ``role`` has ``permission`` (an unknown role has none)."""
    try:
        return Role(role) in GRANTS[permission]
    except ValueError:
        return False


def home_of(role: str) -> str:
    """Where an account lands after logging in."""
    return "/review/fleet" if role == Role.ADMIN else "/review/protocols"
