"""Login sessions of the review interface: a random token in an HttpOnly, SameSite=Strict cookie, kept on the
server only as its SHA-256, with an idle timeout and an absolute lifetime; a per-session form token (CSRF);
and a per-login limit on failed logins. Time comes from the app (``app.state.review_clock``) so tests move it.

A login checks its password with argon2 (tens of milliseconds of CPU on purpose), so ``login_in_worker`` runs
it on the app's own small thread pool (``PASSWORD_WORKERS`` threads): the event loop goes on serving pages,
playback and uploads while clients guess passwords, and guessing clients cannot hold more CPU or memory than
those threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.base import transaction
from server.db.supervisors import LoginAttempt, Supervisor, SupervisorSession
from server.review.accounts import (
    LOGIN_PATTERN,
    MAX_PASSWORD_CHARS,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)

SESSION_COOKIE = "pk_review"
LOGIN_CSRF_COOKIE = "pk_review_login"
FAILED = ("bad_password", "disabled")
TOUCH_EVERY = timedelta(seconds=30)  # how stale ``last_seen_at`` may get (the idle timer's resolution)
PASSWORD_WORKERS = 2  # threads that check passwords; more logins at once wait for one of them
_WORKERS_GUARD = threading.Lock()


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
    role: str = "supervisor"  # server.review.roles.Role


@dataclass(frozen=True)
class LoginResult:
    outcome: str  # ok | bad_password | disabled | rate_limited (the form answers disabled as bad_password)
    token: str | None = None
    retry_after_s: int = 0
    role: str = ""


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
    An unknown login fails exactly like a wrong password, after the same password hashing work. A password
    stored as scrypt (or with older argon2 parameters) is replaced by a fresh argon2 hash when it is right.
    Slow on purpose: call it through ``login_in_worker``, never on the event loop.
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
        good = verify_password(password, supervisor.password_hash if supervisor else dummy_hash())
        if supervisor is None or not good:
            outcome = "bad_password"
        elif not supervisor.active:
            outcome = "disabled"
        else:
            outcome = "ok"
        session.add(LoginAttempt(login=login, at=now, outcome=outcome, client=client))
        if outcome != "ok" or supervisor is None:
            return LoginResult(outcome)
        if needs_rehash(supervisor.password_hash):
            supervisor.password_hash = hash_password(password)
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
        return LoginResult("ok", token=token, role=supervisor.role)


def password_workers(app: Any) -> ThreadPoolExecutor:
    """The app's password-checking threads, made on first use."""
    with _WORKERS_GUARD:
        workers = getattr(app.state, "password_workers", None)
        if workers is None:
            workers = ThreadPoolExecutor(PASSWORD_WORKERS, thread_name_prefix="password-check")
            app.state.password_workers = workers
        return workers


async def login_in_worker(
    app: Any, login: str, password: str, now: datetime, client: str, policy: ReviewPolicy
) -> LoginResult:
    """``attempt_login`` on one of the app's password threads, off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        password_workers(app), attempt_login, app.state.sessions, login, password, now, client, policy
    )


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
        return Reviewer(
            supervisor.id, supervisor.login, supervisor.full_name, row.csrf_token, digest[:16], supervisor.role
        )


def end_session(request: Request) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return
    with transaction(request.app.state.sessions) as session:
        row = session.get(SupervisorSession, token_hash(token))
        if row is not None and row.ended_at is None:
            row.ended_at = now_of(request.app)


def same_origin(request: Request) -> bool:
    """Whether a form post comes from our own pages, as far as the browser tells (the form token is checked
    besides). A browser that sends ``Sec-Fetch-Site`` (every current one) is believed: only ``same-origin``
    passes, so ``same-site`` and ``cross-site`` are refused. Without it, ``Origin`` decides: the request's own
    host or the configured ``http.public_url`` (behind a proxy) pass, ``null`` and any other origin do not.
    A request with neither header did not come from a browser's form."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return True
    public = str(request.app.state.config.http.public_url).rstrip("/")
    return origin == public or origin.split("://", 1)[-1] == request.headers.get("host", "")
