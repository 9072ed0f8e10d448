"""The supervisor review web interface under ``/review``: login and logout, protocol search, the protocol page
with its footage, and the access audit. Its login also guards video playback: ``secure_playback`` replaces
``server.routes.video.playback_guard`` so that only a logged-in, active supervisor gets segment content, and
each play is written to the audit.

Status codes: 303 to the login page for a page without a session (401 for playback), 400 for malformed
input (named), 401 for a wrong login or password (a disabled account answers exactly the same), 403 for a
refused form (CSRF, other site), 404 for an unknown protocol, 413/414 for oversize forms and query strings,
429 while a login is locked after failed attempts.

Any protocol number the devices sync (1-32 characters of any kind) opens at ``/review/protocols/<number>``,
percent-encoded, ``/`` and spaces included; a number that is a dot segment ("." or "..", which browsers
resolve away) at ``/review/protocol?number=<number>``.
"""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from core.ascii_digits import parse_digits
from core.manifest import DEVICE_ID_PATTERN
from server.db.base import transaction
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy
from server.db.protocols import Officer, Payment, Protocol
from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent
from server.db.video import VideoSegment
from server.review import audit
from server.review.accounts import LOGIN_PATTERN, MAX_PASSWORD_CHARS
from server.review.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Reviewer,
    client_of,
    current_reviewer,
    end_session,
    login_in_worker,
    now_of,
    policy_of,
    same_origin,
    same_token,
)
from server.review.footage import footage_for
from server.review.html import CSS, Markup
from server.review.pages import (
    SearchQuery,
    login_page,
    message_page,
    protocol_page,
    search_page,
)
from server.routes.video import playback_guard

router = APIRouter(prefix="/review", tags=["review"])

MAX_PROTOCOL_NUMBER_CHARS = 32  # as synced (core.sync.records): any characters
BADGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./-]{0,31}$")
NEXT_URL = re.compile(r"^/review/[A-Za-z0-9/_.~%?=&+-]{0,1000}$")
MAX_QUERY_CHARS = 1024
MAX_FORM_BYTES = 8 * 1024
SEARCH_FIELDS = ("number", "plate", "badge", "date")
SEARCH_LIMIT = 100
BAD_PROTOCOL_NUMBER = f"номер протокола / protocol number: 1-{MAX_PROTOCOL_NUMBER_CHARS} characters, no NUL"


class AnyText(Convertor[str]):
    """A path parameter that is any text, ``/`` and line breaks included (Starlette's ``path`` stops at a
    line break); the route checks it."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyText())


class BadInput(ValueError):
    """Input the review pages refuse; the message names the field and what is wrong."""


def valid_protocol_number(number: str) -> bool:
    """1-32 characters, none of them NUL (no database stores it in text, so no synced number has one)."""
    return 0 < len(number) <= MAX_PROTOCOL_NUMBER_CHARS and "\x00" not in number


def _html(body: Markup, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """A review page; ``server.security_headers`` adds the security and caching headers."""
    return HTMLResponse(str(body), status_code=status, headers=headers)


def _secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https" or str(request.app.state.config.http.public_url).startswith("https")


def _asked_for(request: Request) -> str:
    """The path and query the browser asked for, as it sent them (percent-encoded)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    return path + (f"?{request.url.query}" if request.url.query else "")


def _to_login(request: Request) -> RedirectResponse:
    """To the login page, which sends the browser back here afterwards (``next``, query string and all)."""
    target = _asked_for(request)
    query = f"?{urlencode({'next': target})}" if NEXT_URL.fullmatch(target) else ""
    return RedirectResponse(f"/review/login{query}", status_code=303)


def _problem(status: int, title: str, text: str, reviewer: Reviewer | None = None) -> HTMLResponse:
    who = reviewer.full_name if reviewer else None
    return _html(message_page(title, text, who, reviewer.csrf_token if reviewer else None), status)


async def _form(request: Request) -> dict[str, str]:
    length = parse_digits(request.headers.get("content-length", ""))
    if length is None or length > MAX_FORM_BYTES:
        raise HTTPException(413, f"form: send at most {MAX_FORM_BYTES} bytes with a Content-Length")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(400, "form: expected application/x-www-form-urlencoded")
    form = await request.form(max_files=0, max_fields=8)
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def review_home() -> RedirectResponse:
    return RedirectResponse("/review/protocols", status_code=303)


@router.get("/review.css", include_in_schema=False)
def review_css() -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> Response:
    if current_reviewer(request) is not None:
        return RedirectResponse(next if NEXT_URL.fullmatch(next) else "/review/protocols", status_code=303)
    token = secrets.token_urlsafe(32)
    response = _html(login_page(token, next_url=next if NEXT_URL.fullmatch(next) else ""))
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure_cookie(request),
        path="/review/login",
    )
    return response


def _form_doc(*fields: str) -> dict[str, Any]:
    """OpenAPI of a form the route reads by hand (``_form``)."""
    properties = {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}}


def _query_doc(*fields: str) -> dict[str, Any]:
    return {"parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in fields]}


@router.post("/login", response_class=HTMLResponse, openapi_extra=_form_doc("csrf", "login", "password", "next"))
async def login(request: Request) -> Response:
    form = await _form(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not expected or not same_token(expected, form.get("csrf")):
        return _problem(
            403,
            "Вход / Log in",
            "Форма устарела или пришла с другого сайта; откройте вход заново / "
            "the form is stale or came from another site: open the login page again",
        )
    login_name = form.get("login", "").strip().lower()
    password = form.get("password", "")
    next_url = form.get("next", "")
    again = secrets.token_urlsafe(32)

    def refused(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        response = _html(
            login_page(again, text, next_url if NEXT_URL.fullmatch(next_url) else ""), status, headers
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            again,
            httponly=True,
            samesite="strict",
            secure=_secure_cookie(request),
            path="/review/login",
        )
        return response

    if not LOGIN_PATTERN.fullmatch(login_name):
        return refused(
            400,
            "Логин: 2–64 латинские буквы, цифры, '.', '_' или '-' / login: 2-64 letters, digits, '.', '_' or '-'",
        )
    if not password or len(password) > MAX_PASSWORD_CHARS:
        return refused(
            400,
            f"Пароль: от 1 до {MAX_PASSWORD_CHARS} символов / password: 1-{MAX_PASSWORD_CHARS} characters",
        )
    app = request.app
    result = await login_in_worker(
        app, login_name, password, now_of(app), client_of(request), policy_of(app)
    )
    if result.outcome == "rate_limited":
        minutes = (result.retry_after_s + 59) // 60
        return refused(
            429,
            f"Слишком много неудачных попыток; повторите через {minutes} мин / too many failed "
            f"logins for this account: try again in {minutes} min",
            {"Retry-After": str(result.retry_after_s)},
        )
    if result.outcome != "ok" or result.token is None:  # a disabled account too: no password oracle
        return refused(401, "Неверный логин или пароль / wrong login or password")
    response = RedirectResponse(
        next_url if NEXT_URL.fullmatch(next_url) else "/review/protocols", status_code=303
    )
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        httponly=True,
        samesite="strict",
        secure=_secure_cookie(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/review/login")
    return response


@router.post("/logout", openapi_extra=_form_doc("csrf"))
async def logout(request: Request) -> Response:
    reviewer = await run_in_threadpool(current_reviewer, request)
    if reviewer is None:
        return RedirectResponse("/review/login", status_code=303)
    form = await _form(request)
    if not same_origin(request) or not same_token(reviewer.csrf_token, form.get("csrf")):
        return _problem(
            403,
            "Выход / Log out",
            "Форма устарела или пришла с другого сайта / the form is stale or came from another site",
            reviewer,
        )
    await run_in_threadpool(end_session, request)
    response = RedirectResponse("/review/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def parse_search(request: Request) -> SearchQuery:
    """The search form's fields, checked; ``BadInput`` names the first bad one. Nothing else is accepted."""
    seen: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in SEARCH_FIELDS:
            raise BadInput(f"unknown search field {key[:40]!r}: use {', '.join(SEARCH_FIELDS)}")
        if key in seen:
            raise BadInput(f"search field {key!r} is given twice")
        seen[key] = value.strip()
    number, plate, badge, day = (seen.get(k, "") for k in SEARCH_FIELDS)
    if len(number) > MAX_PROTOCOL_NUMBER_CHARS or "\x00" in number:
        raise BadInput(BAD_PROTOCOL_NUMBER)
    plate = re.sub(r"[\s-]", "", plate).upper()
    if plate and (len(plate) > 16 or not plate.isalnum()):
        raise BadInput("госномер / plate: up to 16 letters and digits")
    if badge and not BADGE.fullmatch(badge):
        raise BadInput("жетон / badge: up to 32 letters, digits, '-', '/' or '.'")
    parsed: date | None = None
    if day:
        try:
            parsed = date.fromisoformat(day) if len(day) == 10 else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise BadInput("дата / date: expected YYYY-MM-DD")
    return SearchQuery(number, plate, badge, parsed)


@router.get("/protocols", response_class=HTMLResponse, openapi_extra=_query_doc(*SEARCH_FIELDS))
def search(request: Request) -> Response:
    if len(request.url.query) > MAX_QUERY_CHARS:
        return _problem(414, "Поиск / Search", f"query string is longer than {MAX_QUERY_CHARS} characters")
    reviewer = current_reviewer(request)
    if reviewer is None:
        return _to_login(request)
    try:
        query = parse_search(request)
    except BadInput as exc:
        page = search_page(SearchQuery(), None, False, reviewer.full_name, reviewer.csrf_token, str(exc))
        return _html(page, 400)
    if query.empty:
        return _html(search_page(query, None, False, reviewer.full_name, reviewer.csrf_token))
    stmt = select(Protocol, Officer.full_name).outerjoin(Officer, Officer.badge == Protocol.officer_badge)
    if query.number:
        stmt = stmt.where(func.upper(Protocol.number).startswith(query.number.upper(), autoescape=True))
    if query.plate:
        plate = func.upper(func.replace(func.replace(Protocol.vehicle_plate, " ", ""), "-", ""))
        stmt = stmt.where(plate.startswith(query.plate, autoescape=True))
    if query.badge:
        stmt = stmt.where(Protocol.officer_badge == query.badge)
    if query.day:
        stmt = stmt.where(Protocol.offence_date == query.day)
    stmt = stmt.order_by(Protocol.offence_at.desc(), Protocol.number).limit(SEARCH_LIMIT + 1)
    app = request.app
    with transaction(app.state.sessions) as session:
        rows = [(p, name) for p, name in session.execute(stmt).all()]
        audit.record(
            session,
            reviewer,
            "search",
            now_of(app),
            client=client_of(request),
            detail=str(request.url.query)[:MAX_QUERY_CHARS],
        )
    more = len(rows) > SEARCH_LIMIT
    page = search_page(query, rows[:SEARCH_LIMIT], more, reviewer.full_name, reviewer.csrf_token)
    return _html(page)


@router.get("/protocols/{number:anytext}", response_class=HTMLResponse)
def protocol_view(number: str, request: Request) -> Response:
    return _protocol_page(request, number)


@router.get("/protocol", response_class=HTMLResponse)
def protocol_by_query(request: Request, number: str = "") -> Response:
    """The same page for a number that cannot be a path segment ("." or "..")."""
    return _protocol_page(request, number)


def _protocol_page(request: Request, number: str) -> Response:
    if len(request.url.query) > MAX_QUERY_CHARS:
        return _problem(
            414, "Протокол / Protocol", f"query string is longer than {MAX_QUERY_CHARS} characters"
        )
    reviewer = current_reviewer(request)
    if reviewer is None:
        return _to_login(request)
    if not valid_protocol_number(number):
        return _problem(400, "Протокол / Protocol", BAD_PROTOCOL_NUMBER, reviewer)
    app = request.app
    with transaction(app.state.sessions) as session:
        protocol = session.get(Protocol, number)
        if protocol is None:
            return _problem(
                404, "Протокол / Protocol", f"протокол {number} не найден / no protocol {number}", reviewer
            )
        audit.record(
            session, reviewer, "protocol.view", now_of(app), protocol_number=number, client=client_of(request)
        )
        officer = session.get(Officer, protocol.officer_badge)
        payment = session.scalar(select(Payment).where(Payment.protocol_number == number))
        checks = list(
            session.scalars(
                select(OwnCardCheck)
                .where(OwnCardCheck.protocol_number == number)
                .order_by(OwnCardCheck.checked_at)
            )
        )
        receipts = list(
            session.scalars(
                select(ReceiptEvent)
                .where(ReceiptEvent.protocol_number == number)
                .order_by(ReceiptEvent.occurred_at, ReceiptEvent.copy_no)
            )
        )
        bookmarks = list(
            session.scalars(
                select(Bookmark).where(Bookmark.protocol_number == number).order_by(Bookmark.at).limit(100)
            )
        )
        attempts = list(
            session.scalars(
                select(PaymentAttemptCopy)
                .where(PaymentAttemptCopy.protocol_number == number)
                .order_by(PaymentAttemptCopy.started_at)
                .limit(100)
            )
        )
        settlements = list(
            session.scalars(
                select(PaymentSettlementCopy)
                .where(PaymentSettlementCopy.protocol_number == number)
                .order_by(PaymentSettlementCopy.settled_at)
                .limit(100)
            )
        )
        windows = footage_for(session, protocol, bookmarks)
        session.flush()
        shown = [(s.device_id, s.seq) for w in windows for s in w.segments]
        trail = audit.trail(session, number, shown)
        page = protocol_page(
            protocol,
            officer,
            payment,
            checks,
            receipts,
            bookmarks,
            windows,
            trail,
            reviewer.full_name,
            reviewer.csrf_token,
            attempts,
            settlements,
        )
    return _html(page)


def playback_access(request: Request, device_id: str, seq: str) -> None:
    """Replaces ``playback_guard``: 401 without a live session of an active supervisor; else the play of a
    stored segment is audited (with the protocol it was opened from, when the URL names a known one)."""
    reviewer = current_reviewer(request)
    if reviewer is None:
        raise HTTPException(401, "log in as an active supervisor at /review/login to play footage")
    number = parse_digits(seq)
    if not DEVICE_ID_PATTERN.fullmatch(device_id) or number is None or request.method == "HEAD":
        return  # the playback route answers 400 or only the headers, and nothing is recorded
    app = request.app
    with transaction(app.state.sessions) as session:
        stored = session.scalar(
            select(VideoSegment.id).where(
                VideoSegment.device_id == device_id,
                VideoSegment.seq == number,
                VideoSegment.state == "stored",
            )
        )
        if stored is None:
            return  # the playback route answers 404
        protocol: str | None = request.query_params.get("protocol")
        if protocol is not None and (
            not valid_protocol_number(protocol) or session.get(Protocol, protocol) is None
        ):
            protocol = None
        audit.record_play(
            session,
            reviewer,
            now_of(app),
            device_id,
            number,
            protocol,
            client_of(request),
            f"range {request.headers.get('range', 'all')[:60]}",
        )


def secure_playback(app: FastAPI) -> None:
    """Segment content needs a supervisor login from now on (called by ``server.app.create_app``)."""
    app.dependency_overrides[playback_guard] = playback_access
