"""What every workspace page shares: the logged-in account in the header (name, role, logout form), the
navigation its role may use, and the problem page for refused requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from server.review import cases, footage, urls, words
from server.review.auth import Reviewer
from server.review.roles import ROLE_LABELS, Permission, Role, allowed
from server.templates import render
from server.video import integrity

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
