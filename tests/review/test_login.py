"""Supervisor login: sessions in HttpOnly SameSite=Strict cookies, idle and absolute expiry, disabled accounts,
per-login lockout after failed attempts, CSRF-safe forms, and passwords that never reach the database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.supervisors import LoginAttempt, Supervisor, SupervisorSession
from server.review import auth
from server.review.accounts import disable_supervisor, verify_password

from .conftest import PASSWORD, Review


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_good_login_sets_a_strict_httponly_session_cookie_and_opens_the_search(review: Review) -> None:
    page = review.client.get("/review/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    response = review.client.post(
        "/review/login",
        data={"csrf": token, "login": "anna", "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/review/protocols"
    cookie = response.headers["set-cookie"].lower()
    assert "pk_review=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    search = review.client.get("/review/protocols")
    assert search.status_code == 200 and "Анна Сергеевна Ким" in search.text
    with review.sessions() as session:
        stored = session.scalars(select(SupervisorSession)).one()
    assert stored.token_sha256 not in response.headers["set-cookie"], "only the token's hash is stored"


def test_wrong_password_and_unknown_login_are_refused_alike_and_open_no_session(review: Review) -> None:
    assert review.login(password="wrong password!") == 401
    assert review.login(login="nobody") == 401
    assert _count(review.sessions, SupervisorSession) == 0
    assert review.client.get("/review/protocols", follow_redirects=False).status_code == 303


def test_passwords_are_stored_only_as_salted_argon2id_hashes(review: Review) -> None:
    with review.sessions() as session:
        anna, boris = (
            session.scalars(select(Supervisor).where(Supervisor.login == name)).one()
            for name in ("anna", "boris")
        )
    assert anna.password_hash.startswith("$argon2id$") and PASSWORD not in anna.password_hash
    assert anna.password_hash != boris.password_hash, "same password, different salts"
    assert verify_password(PASSWORD, anna.password_hash) and not verify_password(
        "x" + PASSWORD, anna.password_hash
    )
    review.login(password="wrong password!")
    with review.sessions() as session:
        attempts = session.scalars(select(LoginAttempt)).all()
    assert [a.outcome for a in attempts] == ["bad_password"]
    assert all(PASSWORD not in str(vars(a)) and "wrong password" not in str(vars(a)) for a in attempts)


def test_disabled_supervisor_cannot_log_in_and_loses_open_sessions(review: Review) -> None:
    assert review.login() == 303
    with review.sessions() as session, session.begin():
        assert disable_supervisor(session, "anna", review.clock.now()) == 1
    assert review.client.get("/review/protocols", follow_redirects=False).status_code == 303
    assert review.login() == 401, "answered as a wrong password (tests/web/test_hostile_requests.py)"


def test_failed_logins_lock_that_login_for_a_while_even_with_the_right_password(review: Review) -> None:
    for _ in range(5):
        assert review.login(password="wrong password!") == 401
    assert review.login() == 429, "the right password does not help while locked"
    assert review.login("boris") == 303, "other logins are not affected"
    review.client.cookies.clear()
    review.clock.advance(14 * 60)
    assert review.login() == 429
    review.clock.advance(2 * 60)
    assert review.login() == 303


def test_success_resets_the_failure_count(review: Review) -> None:
    for _ in range(4):
        review.login(password="wrong password!")
    assert review.login() == 303
    review.client.cookies.clear()
    for _ in range(4):
        assert review.login(password="wrong password!") == 401
    assert review.login() == 303


def test_session_ends_after_idle_timeout_but_activity_keeps_it_until_its_lifetime(review: Review) -> None:
    assert review.login() == 303
    for _ in range(4):  # 4 × 25 min of activity: still logged in
        review.clock.advance(25 * 60)
        assert review.client.get("/review/protocols", follow_redirects=False).status_code == 200
    review.clock.advance(31 * 60)
    gone = review.client.get("/review/protocols", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/review/login")


def test_session_ends_at_its_absolute_lifetime_however_active(review: Review) -> None:
    assert review.login() == 303
    for _ in range(12 * 3 - 1):  # every 20 min for 11 h 40 min
        review.clock.advance(20 * 60)
        assert review.client.get("/review/protocols", follow_redirects=False).status_code == 200
    review.clock.advance(20 * 60)
    assert review.client.get("/review/protocols", follow_redirects=False).status_code == 303


def test_login_form_without_its_token_or_from_another_site_is_refused(review: Review) -> None:
    review.client.get("/review/login")
    no_token = review.client.post("/review/login", data={"login": "anna", "password": PASSWORD})
    assert no_token.status_code == 403
    page = review.client.get("/review/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    cross = review.client.post(
        "/review/login",
        data={"csrf": token, "login": "anna", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    fetch = review.client.post(
        "/review/login",
        data={"csrf": token, "login": "anna", "password": PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert fetch.status_code == 403
    assert _count(review.sessions, SupervisorSession) == 0
    assert _count(review.sessions, LoginAttempt) == 0, "a refused form is not even an attempt"
    same = review.client.post(
        "/review/login",
        data={"csrf": token, "login": "anna", "password": PASSWORD},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert same.status_code == 303


def test_logout_needs_the_session_form_token_and_then_ends_the_session(review: Review) -> None:
    assert review.login() == 303
    assert review.client.post("/review/logout", data={"csrf": "forged"}).status_code == 403
    assert review.client.get("/review/protocols", follow_redirects=False).status_code == 200
    done = review.client.post("/review/logout", data={"csrf": review.csrf()}, follow_redirects=False)
    assert done.status_code == 303
    with review.sessions() as session:
        assert session.scalars(select(SupervisorSession)).one().ended_at is not None
    assert review.client.get("/review/protocols", follow_redirects=False).status_code == 303


def test_stolen_cookie_stops_working_after_logout(review: Review) -> None:
    assert review.login() == 303
    stolen = review.client.cookies.get("pk_review")
    review.client.post("/review/logout", data={"csrf": review.csrf()})
    review.client.cookies.set("pk_review", stolen or "")
    assert review.client.get("/review/protocols", follow_redirects=False).status_code == 303


def test_malformed_login_or_oversize_form_is_refused_and_records_nothing(review: Review) -> None:
    assert review.login(login="anna' OR '1'='1") == 400
    assert review.login(login="x" * 500) == 400
    huge = review.client.post(
        "/review/login",
        content=b"login=anna&password=" + b"p" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413
    assert _count(review.sessions, LoginAttempt) == 0
    assert _count(review.sessions, SupervisorSession) == 0


def test_login_redirects_back_to_the_page_asked_for_but_never_off_site(review: Review) -> None:
    first = review.client.get("/review/protocols/KZ-2026-000777", follow_redirects=False)
    assert first.headers["location"] == "/review/login?next=%2Freview%2Fprotocols%2FKZ-2026-000777"
    page = review.client.get(first.headers["location"])
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    back = review.client.post(
        "/review/login",
        data={
            "csrf": token,
            "login": "anna",
            "password": PASSWORD,
            "next": "/review/protocols/KZ-2026-000777",
        },
        follow_redirects=False,
    )
    assert back.headers["location"] == "/review/protocols/KZ-2026-000777"
    review.client.post("/review/logout", data={"csrf": review.csrf()})
    page = review.client.get("/review/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    away = review.client.post(
        "/review/login",
        data={"csrf": token, "login": "anna", "password": PASSWORD, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert away.headers["location"] == "/review/protocols"


def test_scrypt_hash_from_before_is_accepted_and_replaced_by_argon2id_at_the_next_login(review: Review) -> None:
    salt = os.urandom(16)
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    before = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with review.sessions() as session, session.begin():
        session.scalars(select(Supervisor).where(Supervisor.login == "boris")).one().password_hash = before

    def stored() -> str:
        with review.sessions() as session:
            return session.scalars(select(Supervisor.password_hash).where(Supervisor.login == "boris")).one()

    assert review.login("boris", "wrong password!") == 401
    assert stored() == before, "a wrong password changes nothing"
    assert review.login("boris") == 303
    after = stored()
    assert after.startswith("$argon2id$") and verify_password(PASSWORD, after)
    assert review.login("boris") == 303, "the new hash opens the account"


def test_password_hashing_does_not_hold_up_other_requests(review: Review, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one login's password is being checked, other requests are answered: the check runs on a
    worker thread, not on the event loop. The check is held open until another request has been answered."""
    entered, release = threading.Event(), threading.Event()
    released_while_checking: list[bool] = []
    real_check = auth.verify_password

    def held_check(password: str, stored: str) -> bool:
        entered.set()
        released_while_checking.append(release.wait(5))
        return real_check(password, stored)

    monkeypatch.setattr(auth, "verify_password", held_check)
    page = review.client.get("/review/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    cookies = dict(review.client.cookies.items())

    async def scenario() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=review.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies) as http:
            login = asyncio.create_task(
                http.post("/review/login", data={"csrf": token, "login": "anna", "password": PASSWORD})
            )
            await asyncio.to_thread(entered.wait, 5)
            other = await http.get("/healthz")
            release.set()
            return (await login).status_code, other.status_code

    assert asyncio.run(scenario()) == (303, 200)
    assert released_while_checking == [True], "the other request was answered while the password was checked"


def test_a_content_length_that_is_not_ascii_digits_is_refused(review: Review) -> None:
    """'²' passed str.isdigit and then made int() fail (a 500). Sent as the raw byte, which uvicorn itself
    would refuse, to the application as any ASGI server may pass it on."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=review.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            headers = [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Content-Length", b"\xb2")]
            return await http.post("/review/login", content=b"login=anna", headers=headers)

    response = asyncio.run(post())
    assert response.status_code == 413 and "Content-Length" in response.text
