"""Supervisor login: sessions in HttpOnly SameSite=Strict cookies, idle and absolute expiry, disabled accounts,
per-login lockout after failed attempts, CSRF-safe forms, and passwords that never reach the database."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.supervisors import LoginAttempt, Supervisor, SupervisorSession
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
