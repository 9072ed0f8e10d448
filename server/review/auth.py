"""Login sessions of the review interface: a random token in an HttpOnly, SameSite=Strict cookie, kept on the
server only as its SHA-256, with an idle timeout and an absolute lifetime; a per-session form token (CSRF);
and a per-login limit on failed logins. Time comes from the app (``app.state.review_clock``) so tests move it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.base import transaction
from server.db.supervisors import LoginAttempt, Supervisor, SupervisorSession
from server.review.accounts import DUMMY_HASH, LOGIN_PATTERN, MAX_PASSWORD_CHARS, verify_password

SESSION_COOKIE = "pk_review"
LOGIN_CSRF_COOKIE = "pk_review_login"
FAILED = ("bad_password", "disabled")
TOUCH_EVERY = timedelta(seconds=30)  # how stale ``last_seen_at`` may get (the idle timer's resolution)


@dataclass(frozen=True)
class ReviewPolicy:
    idle_timeout: timedelta = timedelta(minutes=30)
    absolute_timeout: timedelta = timedelta(hours=12)
    max_failures: int = 5  # failed logins of one login name within ``failure_window`` before it is locked
    failure_window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Reviewer:
    """The logged-in supervisor of a request."""

    supervisor_id: int
    login: str
    full_name: str
    csrf_token: str
    session_ref: str  # first 16 hex of the session hash: names the session in the audit, cannot log in


@dataclass(frozen=True)
class LoginResult:
    outcome: str  # ok | bad_password | disabled | rate_limited
    token: str | None = None
    retry_after_s: int = 0


def policy_of(app: Any) -> ReviewPolicy:
    policy = getattr(app.state, "review_policy", None)
    return policy if isinstance(policy, ReviewPolicy) else ReviewPolicy()


def now_of(app: Any) -> datetime:
    clock: Callable[[], datetime] | None = getattr(app.state, "review_clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def client_of(request: Request) -> str:
    return (request.client.host if request.client else "")[:64]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode("utf-8", "replace"))


def attempt_login(
    sessions: sessionmaker[Session],
    login: str,
    password: str,
    now: datetime,
    client: str,
    policy: ReviewPolicy,
) -> LoginResult:
    """Check a login, record the attempt, and open a session when it succeeds.

    ``login`` must already match ``LOGIN_PATTERN``. While the login has ``max_failures`` failures within
    ``failure_window`` since its last success, the password is not even checked (``rate_limited``).
    An unknown login fails exactly like a wrong password, after the same scrypt work.
    """
    if not LOGIN_PATTERN.fullmatch(login) or len(password) > MAX_PASSWORD_CHARS:
        raise ValueError("login or password is malformed")
    with transaction(sessions) as session:
        since = now - policy.failure_window
        last_ok = session.scalar(
            select(func.max(LoginAttempt.at)).where(LoginAttempt.login == login, LoginAttempt.outcome == "ok")
        )
        if last_ok is not None and last_ok > since:
            since = last_ok
        failures = list(
            session.scalars(
                select(LoginAttempt.at)
                .where(LoginAttempt.login == login, LoginAttempt.at > since, LoginAttempt.outcome.in_(FAILED))
                .order_by(LoginAttempt.at.desc())
                .limit(policy.max_failures)
            )
        )
        if len(failures) >= policy.max_failures:
            session.add(LoginAttempt(login=login, at=now, outcome="rate_limited", client=client))
            free_at = failures[-1] + policy.failure_window
            return LoginResult("rate_limited", retry_after_s=max(1, int((free_at - now).total_seconds())))
        supervisor = session.scalar(select(Supervisor).where(Supervisor.login == login))
        good = verify_password(password, supervisor.password_hash if supervisor else DUMMY_HASH)
        if supervisor is None or not good:
            outcome = "bad_password"
        elif not supervisor.active:
            outcome = "disabled"
        else:
            outcome = "ok"
        session.add(LoginAttempt(login=login, at=now, outcome=outcome, client=client))
        if outcome != "ok" or supervisor is None:
            return LoginResult(outcome)
        token = secrets.token_urlsafe(32)
        session.add(
            SupervisorSession(
                token_sha256=token_hash(token),
                supervisor_id=supervisor.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + policy.absolute_timeout,
                client=client,
            )
        )
        return LoginResult("ok", token=token)


def current_reviewer(request: Request) -> Reviewer | None:
    """The supervisor whose live session the request's cookie names; refreshes its idle timer. A session
    past its idle timeout or lifetime, ended at logout, or of a disabled account gives None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    app = request.app
    now = now_of(app)
    policy = policy_of(app)
    digest = token_hash(token)
    with transaction(app.state.sessions) as session:
        row = session.get(SupervisorSession, digest)
        if row is None or row.ended_at is not None:
            return None
        supervisor = session.get(Supervisor, row.supervisor_id)
        if (
            supervisor is None
            or not supervisor.active
            or now >= row.expires_at
            or now - row.last_seen_at > policy.idle_timeout
        ):
            row.ended_at = now
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:  # not one write per range request of a playing video
            row.last_seen_at = now
        return Reviewer(supervisor.id, supervisor.login, supervisor.full_name, row.csrf_token, digest[:16])


def end_session(request: Request) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return
    with transaction(request.app.state.sessions) as session:
        row = session.get(SupervisorSession, token_hash(token))
        if row is not None and row.ended_at is None:
            row.ended_at = now_of(request.app)


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (``Origin`` or ``Sec-Fetch-Site``).
    The origin may be the request's own host or the configured ``http.public_url`` (behind a proxy)."""
    origin = request.headers.get("origin")
    if origin == "null":
        return False
    if origin is not None:
        public = str(request.app.state.config.http.public_url).rstrip("/")
        if origin.split("://", 1)[-1] != request.headers.get("host", "") and origin != public:
            return False
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
