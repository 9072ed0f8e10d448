"""Who may use the app: officers' PINs, the lockout after wrong PINs, sign-in sessions and the idle lock.

- **PINs** are kept only as argon2id hashes: set on the device with ``patrol-edge officer add … --pin`` or
  sent by the server in the signed ``officers`` dataset (``{"officers": [{"badge", "full_name", "unit",
  "language", "pin_argon2"}]}``). Where the dataset lists a badge, its hash is the one checked.
- **Lockout**: ``pin_max_failures`` wrong PINs in a row lock that badge for ``pin_lock_minutes``; while it is
  locked no PIN is even checked. The count lives on the officer's row, so a restart does not reset it. A badge
  the device does not know is answered exactly like a wrong PIN.
- **Sessions**: a random token in an HttpOnly, SameSite=Strict cookie, stored only as its SHA-256, with its own
  CSRF token; it ends after ``session_hours``. After ``idle_lock_s`` without a request from the officer the
  session is locked: pages show the lock screen until the same officer's PIN is given (the lockout counts
  there too). A payment under way goes on while the screen is locked.

Time comes from the injected clock, so tests move it instead of waiting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.structured_log import log_event
from edge.db.base import transaction
from edge.db.officer_app import OfficerSession
from edge.db.protocols import Officer
from edge.sync.datasets import active_content

log = logging.getLogger(__name__)

OFFICERS_DATASET = "officers"
# argon2id with OWASP's second recommended setting (19 MiB, 2 passes): a PIN check costs ~20 ms here.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
PIN_DIGITS = (4, 8)


class PinError(ValueError):
    pass


def hash_pin(pin: str) -> str:
    """The argon2id hash of a PIN of 4 to 8 digits; ``PinError`` for anything else."""
    if not (pin.isascii() and pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]):
        raise PinError(f"a PIN is {PIN_DIGITS[0]} to {PIN_DIGITS[1]} digits")
    return HASHER.hash(pin)


def _matches(pin_hash: str, pin: str) -> bool:
    try:
        return HASHER.verify(pin_hash, pin)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class AccountPolicy:
    idle_lock: timedelta = timedelta(minutes=2)
    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)
    session_for: timedelta = timedelta(hours=12)
    default_language: str = "ru"


class DatasetOfficer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    badge: str = Field(min_length=1, max_length=32)
    full_name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="", max_length=200)
    language: Literal["kk", "ru", "en"] | None = None
    pin_argon2: str = Field(min_length=20, max_length=400)


class OfficersDataset(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    officers: list[DatasetOfficer]


def dataset_officer(session: Session, badge: str) -> DatasetOfficer | None:
    """The badge's entry in the active ``officers`` dataset, if the device has one that lists it."""
    held = active_content(session, OFFICERS_DATASET)
    if held is None:
        return None
    try:
        data = OfficersDataset.model_validate(json.loads(held[1]))
    except (ValueError, ValidationError) as exc:
        log_event(log, "officer.dataset_unreadable", version=held[0], error=str(exc)[:200])
        return None
    return next((o for o in data.officers if o.badge == badge), None)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a PIN check: ``ok`` (with the session's token), ``wrong`` (tries left), ``locked``."""

    outcome: Literal["ok", "wrong", "locked"]
    token: str | None = None
    tries_left: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True)
class SessionView:
    token_sha256: str
    badge: str
    full_name: str
    language: str
    csrf: str
    locked: bool


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Accounts:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, policy: AccountPolicy) -> None:
        self.sessions = sessions
        self.clock = clock
        self.policy = policy

    # ---------------------------------------------------------------- PINs
    def _credential(self, s: Session, badge: str) -> tuple[Officer | None, str | None]:
        """The officer's row (made from the dataset when only it knows the badge) and the hash to check."""
        officer = s.get(Officer, badge)
        listed = dataset_officer(s, badge)
        if listed is not None:
            if officer is None:
                officer = Officer(badge=badge, full_name=listed.full_name, unit=listed.unit)
                officer.language = listed.language or self.policy.default_language
                officer.pin_failures = 0
                s.add(officer)
            else:
                officer.full_name, officer.unit = listed.full_name, listed.unit
                if listed.language:
                    officer.language = listed.language
            return officer, listed.pin_argon2
        return officer, officer.pin_hash if officer is not None else None

    def check_pin(self, badge: str, pin: str) -> Literal["ok", "wrong", "locked"] | SignIn:
        """Check ``pin`` for ``badge`` under the lockout rule (committed before the answer is given)."""
        now = self.clock.now()
        with transaction(self.sessions) as s:
            officer, pin_hash = self._credential(s, badge.strip())
            if officer is None or pin_hash is None:
                log_event(log, "officer.sign_in_refused", badge=badge[:32], reason="unknown badge or no PIN")
                return SignIn("wrong", tries_left=self.policy.max_failures)
            if officer.pin_locked_until is not None and officer.pin_locked_until > now:
                return SignIn("locked", locked_until=officer.pin_locked_until)
            if _matches(pin_hash, pin):
                officer.pin_failures = 0
                officer.pin_locked_until = None
                return "ok"
            officer.pin_failures = (officer.pin_failures or 0) + 1
            if officer.pin_failures >= self.policy.max_failures:
                officer.pin_failures = 0
                officer.pin_locked_until = now + self.policy.lock_for
                log_event(
                    log,
                    "officer.badge_locked",
                    badge=officer.badge,
                    until=officer.pin_locked_until.isoformat(),
                )
                return SignIn("locked", locked_until=officer.pin_locked_until)
            left = self.policy.max_failures - officer.pin_failures
            log_event(log, "officer.wrong_pin", badge=officer.badge, tries_left=left)
            return SignIn("wrong", tries_left=left)

    def sign_in(self, badge: str, pin: str) -> SignIn:
        checked = self.check_pin(badge, pin)
        if checked != "ok":
            assert isinstance(checked, SignIn)
            return checked
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with transaction(self.sessions) as s:
            s.execute(
                delete(OfficerSession).where(OfficerSession.last_seen_at < now - self.policy.session_for)
            )
            s.add(
                OfficerSession(
                    token_sha256=_sha(token), badge=badge.strip(), csrf=secrets.token_urlsafe(24),
                    created_at=now, last_seen_at=now, locked=False,
                )
            )  # fmt: skip
        log_event(log, "officer.signed_in", badge=badge.strip())
        return SignIn("ok", token=token)

    # ---------------------------------------------------------------- sessions
    def session(self, token: str | None, touch: bool) -> SessionView | None:
        """The session of ``token``: None when unknown or expired; locked once idle too long. ``touch`` (a
        request by the officer) restarts the idle time of an unlocked session."""
        if not token or len(token) > 100:
            return None
        now = self.clock.now()
        with transaction(self.sessions) as s:
            row = s.get(OfficerSession, _sha(token))
            if row is None:
                return None
            if now - row.created_at > self.policy.session_for:
                s.delete(row)
                return None
            if not row.locked and now - row.last_seen_at > self.policy.idle_lock:
                row.locked = True
                log_event(log, "officer.idle_locked", badge=row.badge)
            elif touch and not row.locked:
                row.last_seen_at = now
            officer = s.get(Officer, row.badge)
            language = (officer.language if officer else None) or self.policy.default_language
            name = officer.full_name if officer else row.badge
            return SessionView(row.token_sha256, row.badge, name, language, row.csrf, row.locked)

    def unlock(self, token: str, pin: str) -> SignIn:
        view = self.session(token, touch=False)
        if view is None:
            return SignIn("wrong")
        checked = self.check_pin(view.badge, pin)
        if checked != "ok":
            assert isinstance(checked, SignIn)
            return checked
        with transaction(self.sessions) as s:
            row = s.get(OfficerSession, view.token_sha256)
            if row is not None:
                row.locked = False
                row.last_seen_at = self.clock.now()
        return SignIn("ok", token=token)

    def lock(self, token: str) -> None:
        with transaction(self.sessions) as s:
            row = s.get(OfficerSession, _sha(token))
            if row is not None:
                row.locked = True

    def sign_out(self, token: str) -> None:
        with transaction(self.sessions) as s:
            s.execute(delete(OfficerSession).where(OfficerSession.token_sha256 == _sha(token)))

    def set_language(self, badge: str, lang: str) -> None:
        with transaction(self.sessions) as s:
            officer = s.get(Officer, badge)
            if officer is not None:
                officer.language = lang
