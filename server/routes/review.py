"""The supervisor workspace under ``/review``: login and logout, the search, and the stop page (one player,
one timeline, integrity, payment, receipts, cases and the access audit of the stop).

Status codes: 303 to the login page for a page without a session (401 for footage and forms), 403 for a
role without the permission or a refused form (CSRF, other site), 400 for malformed input (named), 401 for
a wrong login or password (a disabled account answers exactly the same), 404 for an unknown protocol,
413/414 for oversize forms and query strings, 429 while a login is locked after failed attempts.

Any protocol number the devices sync (1-32 characters of any kind) opens at ``/review/protocols/<number>``,
percent-encoded, ``/`` and spaces included; a number that is a dot segment ("." or "..", which browsers
resolve away) at ``/review/protocol?number=<number>``.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from server.db.base import transaction
from server.review import audit
from server.review.access import NEXT_URL_PATTERN, Reviewing
from server.review.accounts import LOGIN_PATTERN, MAX_PASSWORD_CHARS
from server.review.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_of,
    current_reviewer,
    end_session,
    login_in_worker,
    now_of,
    policy_of,
    same_origin,
    same_token,
)
from server.review.query import MAX_QUERY_CHARS, bounded_query, form_model
from server.review.roles import home_of
from server.review.search import (
    BAD_PROTOCOL_NUMBER,
    MAX_PROTOCOL_NUMBER_CHARS,
    SearchParams,
    search_protocols,
    search_query_string,
)
from server.review.stop_page import load_stop, table_rows
from server.review.views import page, problem
from server.templates import zone_of

router = APIRouter(prefix="/review", tags=["review"])

NEXT_URL = re.compile(NEXT_URL_PATTERN)


class AnyText(Convertor[str]):
    """A path parameter that is any text, ``/`` and line breaks included (Starlette's ``path`` stops at a
    line break); the route checks it."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyText())


def valid_protocol_number(number: str) -> bool:
    """1-32 characters, none of them NUL (no database stores it in text, so no synced number has one)."""
    return 0 < len(number) <= MAX_PROTOCOL_NUMBER_CHARS and "\x00" not in number


def _secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https" or str(request.app.state.config.http.public_url).startswith("https")


class LoginForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf: str = Field("", max_length=200)
    login: str = Field("", max_length=200)
    password: str = Field("", max_length=MAX_PASSWORD_CHARS + 1)
    next: str = Field("", max_length=2000)


class FormToken(BaseModel):
    """A form whose only field is its token (logout, verify, export)."""

    model_config = ConfigDict(extra="forbid")

    csrf: str = Field("", max_length=200)


class LoginQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    next: str = Field("", max_length=MAX_QUERY_CHARS)


class NumberQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    number: str = Field("", max_length=MAX_QUERY_CHARS)
    back: str = Field("", alias="from", max_length=MAX_QUERY_CHARS)


def _form_doc(*fields: str) -> dict[str, Any]:
    """OpenAPI of a form the route reads through ``form_model``."""
    properties = {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}}


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def review_home(request: Request) -> RedirectResponse:
    reviewer = current_reviewer(request)
    return RedirectResponse(home_of(reviewer.role) if reviewer else "/review/protocols", status_code=303)


def _login_page(request: Request, token: str, error: str = "", next_url: str = "", status: int = 200,
                headers: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    response = page(
        request,
        "review/login.html",
        "Вход / Log in",
        None,
        {"csrf": token, "error_text": error, "next_url": next_url if NEXT_URL.fullmatch(next_url) else ""},
        status,
        headers,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure_cookie(request),
        path="/review/login",
    )  # fmt: skip
    return response


@router.get("/login", response_class=HTMLResponse, dependencies=[Depends(bounded_query)])
def login_form(request: Request, query: Annotated[LoginQuery, Query()]) -> Response:
    reviewer = current_reviewer(request)
    if reviewer is not None:
        return RedirectResponse(
            query.next if NEXT_URL.fullmatch(query.next) else home_of(reviewer.role), status_code=303
        )
    return _login_page(request, secrets.token_urlsafe(32), next_url=query.next)


@router.post("/login", response_class=HTMLResponse, openapi_extra=_form_doc(*LoginForm.model_fields))
async def login(request: Request, form: Annotated[LoginForm, Depends(form_model(LoginForm))]) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not expected or not same_token(expected, form.csrf):
        return problem(
            request,
            403,
            "Вход / Log in",
            "Форма устарела или пришла с другого сайта; откройте вход заново / "
            "the form is stale or came from another site: open the login page again",
        )
    login_name = form.login.strip().lower()
    again = secrets.token_urlsafe(32)

    def refused(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        return _login_page(request, again, text, form.next, status, headers)

    if not LOGIN_PATTERN.fullmatch(login_name):
        return refused(
            400,
            "Логин: 2–64 латинские буквы, цифры, '.', '_' или '-' / login: 2-64 letters, digits, '.', '_' or '-'",
        )
    if not form.password or len(form.password) > MAX_PASSWORD_CHARS:
        return refused(
            400, f"Пароль: от 1 до {MAX_PASSWORD_CHARS} символов / password: 1-{MAX_PASSWORD_CHARS} characters"
        )
    app = request.app
    result = await login_in_worker(
        app, login_name, form.password, now_of(app), client_of(request), policy_of(app)
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
    home = home_of(result.role)
    response = RedirectResponse(form.next if NEXT_URL.fullmatch(form.next) else home, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, result.token, httponly=True, samesite="strict", secure=_secure_cookie(request), path="/"
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/review/login")
    return response


@router.post("/logout", openapi_extra=_form_doc("csrf"))
async def logout(request: Request, form: Annotated[FormToken, Depends(form_model(FormToken))]) -> Response:
    reviewer = await run_in_threadpool(current_reviewer, request)
    if reviewer is None:
        return RedirectResponse("/review/login", status_code=303)
    if not same_origin(request) or not same_token(reviewer.csrf_token, form.csrf):
        return problem(
            request, 403, "Выход / Log out",
            "Форма устарела или пришла с другого сайта / the form is stale or came from another site", reviewer,
        )  # fmt: skip
    await run_in_threadpool(end_session, request)
    response = RedirectResponse("/review/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/protocols", response_class=HTMLResponse, dependencies=[Depends(bounded_query)])
def search(request: Request, reviewer: Reviewing, params: Annotated[SearchParams, Query()]) -> Response:
    app = request.app
    with transaction(app.state.sessions) as session:
        found = search_protocols(session, params)
        if not params.empty:
            audit.record(
                session, reviewer, "search", now_of(app), client=client_of(request),
                detail=str(request.url.query)[:MAX_QUERY_CHARS],
            )  # fmt: skip
    context = {"params": params, "found": found, "query": search_query_string(params), "error_text": ""}
    return page(request, "review/search.html", "Поиск протокола / Protocol search", reviewer, context)


def search_error_page(request: Request, reason: str) -> Response:
    """The search form again, with what was wrong (the query's other fields are not shown back)."""
    from server.review.search import SearchResult

    reviewer = getattr(request.state, "reviewer", None)
    if request.url.path == "/review/protocols":
        context = {"params": SearchParams(), "found": SearchResult([], False), "query": "", "error_text": reason}
        return page(request, "review/search.html", "Поиск протокола / Protocol search", reviewer, context, 400)
    return problem(request, 400, "Неверный запрос / Bad request", reason, reviewer)


class StopQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    back: str = Field("", alias="from", max_length=MAX_QUERY_CHARS, description="the search it was found by")


@router.get("/protocols/{number:anytext}", response_class=HTMLResponse, dependencies=[Depends(bounded_query)])
def protocol_view(
    number: str, request: Request, reviewer: Reviewing, query: Annotated[StopQuery, Query()]
) -> Response:
    return _stop_page(request, reviewer, number, query.back)


@router.get("/protocol", response_class=HTMLResponse, dependencies=[Depends(bounded_query)])
def protocol_by_query(request: Request, reviewer: Reviewing, query: Annotated[NumberQuery, Query()]) -> Response:
    """The same page for a number that cannot be a path segment ("." or "..")."""
    return _stop_page(request, reviewer, query.number, query.back)


def _stop_page(request: Request, reviewer: Any, number: str, back: str = "") -> Response:
    if not valid_protocol_number(number):
        return problem(request, 400, "Протокол / Protocol", BAD_PROTOCOL_NUMBER, reviewer)
    app = request.app
    with transaction(app.state.sessions) as session:
        stop = load_stop(session, number, reviewer)
        if stop is None:
            return problem(
                request, 404, "Протокол / Protocol", f"протокол {number} не найден / no protocol {number}", reviewer
            )
        audit.record(
            session, reviewer, "protocol.view", now_of(app), protocol_number=number, client=client_of(request)
        )
        stop.trail = audit.trail(session, number, stop.segment_keys())
        context: dict[str, Any] = {"stop": stop, "back": _search_back(back), **table_rows(stop, zone_of(request))}
    return page(request, "review/stop.html", f"Протокол / Protocol {number}", reviewer, context)


def _search_back(query: str) -> str:
    """A search's query string, if it is one (only search fields): the stop page's link back to it."""
    from urllib.parse import parse_qsl, urlencode

    try:
        pairs = parse_qsl(query, strict_parsing=True, max_num_fields=len(SearchParams.model_fields))
    except ValueError:
        return ""
    if not pairs or any(k not in SearchParams.model_fields for k, _ in pairs):
        return ""
    return urlencode(pairs)
