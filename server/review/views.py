"""What every workspace page shares: the logged-in account in the header (name, role, logout form), the
navigation its role may use, the problem page for refused requests, and the answer when the video store
cannot be reached (``store_unavailable``: 503 with Retry-After, a page under ``/review`` that says so)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.structured_log import log_event
from server.review import cases, footage, urls, words
from server.review.auth import Reviewer
from server.review.roles import ROLE_LABELS, Permission, Role, allowed
from server.templates import render
from server.video import integrity

log = logging.getLogger(__name__)
STORE_RETRY_AFTER_S = 15  # Retry-After while the video store cannot be reached
STORE_DOWN_TITLE = "Хранилище недоступно / Video store unavailable"
STORE_DOWN_TEXT = (
    "Хранилище видео и файлов сейчас недоступно; ничего не изменено. Повторите через минуту / "
    "the video store is unavailable right now; nothing was changed. Try again in a minute."
)
# What the workspace's templates may read besides their own context: the words of every state and cause.
TEMPLATE_NAMES = {"w": words, "cw": cases, "fw": footage, "iw": integrity, "url": urls}


@dataclass(frozen=True)
class Who:
    full_name: str
    role_label: str
    csrf: str


@dataclass(frozen=True)
class NavItem:
    url: str
    label: str
    current: bool


NAV: tuple[tuple[str, str, Permission], ...] = (
    ("/review/protocols", "Поиск / Search", Permission.REVIEW),
    ("/review/cases", "Жалобы / Cases", Permission.REVIEW),
    ("/review/fleet", "Устройства / Fleet", Permission.FLEET),
    ("/review/audit", "Журнал / Audit", Permission.AUDIT),
    ("/review/accounts", "Учётные записи / Accounts", Permission.ACCOUNTS),
)


def who_of(reviewer: Reviewer | None) -> Who | None:
    if reviewer is None:
        return None
    try:
        label = ROLE_LABELS[Role(reviewer.role)]
    except ValueError:
        label = reviewer.role
    return Who(reviewer.full_name, label, reviewer.csrf_token)


def nav_of(request: Request, reviewer: Reviewer | None) -> list[NavItem]:
    if reviewer is None:
        return []
    path = request.url.path
    return [
        NavItem(url, label, path.startswith(url))
        for url, label, permission in NAV
        if allowed(reviewer.role, permission)
    ]


def page(
    request: Request,
    template: str,
    title: str,
    reviewer: Reviewer | None,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A workspace page: ``template`` with the header's account and navigation."""
    values = {
        **TEMPLATE_NAMES,
        "title": title,
        "who": who_of(reviewer),
        "nav": nav_of(request, reviewer),
        **(context or {}),
    }
    return render(request, template, values, status, headers)


def problem(
    request: Request, status: int, title: str, text: str, reviewer: Reviewer | None = None
) -> HTMLResponse:
    """A refusal as a page: what was wrong, and the way back."""
    if reviewer is None:
        reviewer = getattr(request.state, "reviewer", None)
    return page(request, "review/message.html", title, reviewer, {"text": text}, status)


def refused_form(request: Request, reviewer: Reviewer, token: str) -> HTMLResponse | None:
    """A 403 page when a form's token is not the session's or the form came from another site; else None."""
    from server.review.auth import same_origin, same_token

    if same_origin(request) and same_token(reviewer.csrf_token, token):
        return None
    return problem(
        request, 403, "Форма / Form",
        "Форма устарела или пришла с другого сайта / the form is stale or came from another site", reviewer,
    )  # fmt: skip


def store_unavailable(request: Request, exc: Exception) -> Response:
    """The video store could not be reached while a request read footage or case files: 503 with
    ``Retry-After``; a workspace page says so, anything else (playlists, the API) answers JSON."""
    log_event(log, "review.store_unavailable", path=request.url.path[:200], error=str(exc)[:300])
    headers = {"Retry-After": str(STORE_RETRY_AFTER_S)}
    path = request.url.path
    if path.startswith("/review") and not path.startswith("/review/api/"):
        reviewer = getattr(request.state, "reviewer", None)
        return page(request, "review/message.html", STORE_DOWN_TITLE, reviewer, {"text": STORE_DOWN_TEXT}, 503,
                    headers)  # fmt: skip
    return JSONResponse({"error": "video store unavailable, try again later", "retry": True}, status_code=503,
                        headers=headers)  # fmt: skip
