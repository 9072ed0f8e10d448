"""Supervisor accounts: argon2id password hashes (argon2-cffi, a random salt each), and the add / disable /
password changes the command line makes. Passwords are never stored, logged or echoed; only their hashes
reach the database.

Hashes made before argon2 (``scrypt$N$r$p$salt$hash``) are still accepted; ``needs_rehash`` says so, and the
login stores an argon2 hash in their place as soon as the right password is given.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.db.supervisors import Supervisor, SupervisorSession

LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
# argon2id with 19 MiB, 2 passes, 1 lane: the first configuration of OWASP's password storage cheat sheet
# (about 30 ms on one core). Hashes with other parameters still verify and are replaced at the next login.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class AccountError(ValueError):
    """A supervisor account change that cannot be made; the message says why."""


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string ``$argon2id$v=19$m=…,t=…,p=…$salt$hash``) of ``password``, fresh salt."""
    return PASSWORD_HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (argon2, or scrypt from before); False for a malformed hash.
    Slow on purpose: call it off the event loop."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return PASSWORD_HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` is not an argon2 hash with today's parameters (replace it at the next login)."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return PASSWORD_HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    """A hash of the earlier ``scrypt$N$r$p$<salt b64>$<hash b64>`` form (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        n_i, r_i, p_i = int(n), int(r), int(p)
        if not (2 <= n_i <= 2**20 and 1 <= r_i <= 32 and 1 <= p_i <= 16):
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n_i,
            r=r_i,
            p=p_i,
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


@functools.cache
def dummy_hash() -> str:
    """Checked against when the login is unknown, so that it costs the same time as a wrong password."""
    return hash_password("not a password of anyone")


def check_login(login: str) -> str:
    if not LOGIN_PATTERN.fullmatch(login):
        raise AccountError(
            f"login {login[:70]!r}: use 2-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return login


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password is too short: use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"password is too long: use at most {MAX_PASSWORD_CHARS} characters")
    if password != password.strip() or "\n" in password:
        raise AccountError("password must not begin or end with white space or hold a line break")
    return password


def add_supervisor(
    session: Session, login: str, full_name: str, password: str, now: datetime, role: str = "supervisor"
) -> Supervisor:
    """A new active account with ``role`` (``server.review.roles.Role``); ``AccountError`` for a bad login,
    name, password or role, or a login already taken."""
    from server.review.roles import Role

    if role not in {r.value for r in Role}:
        raise AccountError(f"role {role[:20]!r}: use one of {', '.join(r.value for r in Role)}")
    check_login(login)
    name = full_name.strip()
    if not name or len(name) > 200:
        raise AccountError("name: give the supervisor's full name (1-200 characters)")
    check_password(password)
    if session.scalar(select(Supervisor.id).where(Supervisor.login == login)) is not None:
        raise AccountError(f"supervisor {login} already exists")
    supervisor = Supervisor(
        login=login,
        full_name=name,
        password_hash=hash_password(password),
        active=True,
        role=role,
        created_at=now,
        password_changed_at=now,
    )
    session.add(supervisor)
    session.flush()
    return supervisor


def _existing(session: Session, login: str) -> Supervisor:
    supervisor = session.scalar(select(Supervisor).where(Supervisor.login == login))
    if supervisor is None:
        raise AccountError(f"no supervisor with login {login[:70]!r}")
    return supervisor


def end_sessions(session: Session, supervisor_id: int, now: datetime) -> int:
    """End every open session of a supervisor; returns how many were open."""
    result = session.execute(
        update(SupervisorSession)
        .where(SupervisorSession.supervisor_id == supervisor_id, SupervisorSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def disable_supervisor(session: Session, login: str, now: datetime) -> int:
    """Disable an account and end its open sessions at once; returns how many sessions were ended."""
    supervisor = _existing(session, login)
    if supervisor.active:
        supervisor.active = False
        supervisor.disabled_at = now
    return end_sessions(session, supervisor.id, now)


def set_password(session: Session, login: str, password: str, now: datetime) -> None:
    """A new password (fresh salt); every open session of the account ends."""
    check_password(password)
    supervisor = _existing(session, login)
    supervisor.password_hash = hash_password(password)
    supervisor.password_changed_at = now
    end_sessions(session, supervisor.id, now)
