"""Who may see a page and who may change anything: FastAPI dependencies of the officer app.

- ``signed_in``: the officer of the request's session cookie; no session → the sign-in screen, a locked one →
  the lock screen (each returns to the page asked for afterwards). A request counts as the officer's activity.
- ``form_checked``: every state-changing request (POST) must come from this app's own pages: a browser's
  ``Sec-Fetch-Site`` must say ``same-origin`` (without it, ``Origin``, when sent, must be this origin), and the
  form must carry the session's CSRF token (sign-in: the token of its pre-session cookie). Anything else is a
  403 that names the reason, and nothing is changed.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request

from edge.officer_app.accounts import SessionView
from edge.officer_app.i18n import Translator

if TYPE_CHECKING:
    from edge.officer_app.web import OfficerApp

SESSION_COOKIE = "officer_session"
SIGNIN_COOKIE = "officer_signin"


class Redirect(Exception):
    """Answer the request with a redirect (303) to ``url``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def app_of(request: Request) -> OfficerApp:
    return request.app.state.officer


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to return to (never another site)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return quote(request.url.path + query, safe="/?=&")


@dataclass(frozen=True)
class Officer:
    """The signed-in officer of a request, and the officer's language."""

    session: SessionView
    t: Translator

    @property
    def badge(self) -> str:
        return self.session.badge


def signed_in(request: Request) -> Officer:
    app = app_of(request)
    view = app.accounts.session(request.cookies.get(SESSION_COOKIE), touch=True)
    if view is None:
        raise Redirect(f"/signin?next={_here(request)}")
    if view.locked:
        raise Redirect(f"/lock?next={_here(request)}")
    return Officer(view, app.translator(view.language))


def same_origin(request: Request) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site != "same-origin":
            raise HTTPException(403, f"refused: a request from another site ({site})")
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, f"refused: a request from another origin ({origin[:80]})")


def check_token(expected: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise HTTPException(403, "refused: the form's token is missing or stale; open the page again")


def form_checked(request: Request, officer: Officer, csrf: str | None) -> None:
    same_origin(request)
    check_token(officer.session.csrf, csrf)


def signin_token(request: Request) -> str:
    """The sign-in form's token: the pre-session cookie's, or a new one (the page sets it)."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
