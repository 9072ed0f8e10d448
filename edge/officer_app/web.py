"""Builds the officer app on the device's FastAPI application: templates (Jinja2, autoescaped, an unknown name
is an error), static files, the headers every response carries, and one router per screen.

Every response carries a Content-Security-Policy that allows only this device's own scripts, styles, images
and connections (no inline script, no other site), ``X-Frame-Options: DENY``, ``nosniff``,
``Referrer-Policy: same-origin``, ``Cache-Control: no-store`` (static files excepted) and
``Server-Timing: app;dur=<ms>``: how long the device took to answer, which the benchmark reads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.clock import Clock
from edge.config import EdgeConfig
from edge.identity import DeviceIdentity
from edge.officer_app.accounts import AccountPolicy, Accounts
from edge.officer_app.guards import Officer, Redirect
from edge.officer_app.i18n import LANGUAGE_NAMES, LANGUAGES, Translator
from edge.officer_app.payment_desk import PaymentDesk
from edge.officer_app.roadside_check import RoadsideCheck
from edge.officer_app.status_board import StatusBoard

HERE = Path(__file__).resolve().parent
STATIC_PREFIX = "/static/"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class ResponseHeaders:
    """ASGI middleware: the headers above on every response, ``Cache-Control: no-store`` on all but static
    files, and the time the app took as ``Server-Timing``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        static = str(scope.get("path", "")).startswith(STATIC_PREFIX)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Cache-Control", "no-cache" if static else "no-store")
                headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
            await send(message)

        await self.app(scope, receive, with_headers)


class OfficerApp:
    """Everything the screens share: configuration, database, clock, accounts, the payment desk."""

    def __init__(
        self, config: EdgeConfig, identity: DeviceIdentity, sessions: sessionmaker[Session], clock: Clock
    ) -> None:
        o = config.officer
        from datetime import timedelta

        self.config = config
        self.identity = identity
        self.sessions = sessions
        self.clock = clock
        self.accounts = Accounts(
            sessions,
            clock,
            AccountPolicy(
                idle_lock=timedelta(seconds=o.idle_lock_s),
                max_failures=o.pin_max_failures,
                lock_for=timedelta(minutes=o.pin_lock_minutes),
                session_for=timedelta(hours=o.session_hours),
                default_language=o.default_language,
            ),
        )
        self.desk = PaymentDesk(config, identity, sessions, clock)
        self.board = StatusBoard(config, sessions, clock)
        self.check = RoadsideCheck(sessions)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def translator(self, lang: str) -> Translator:
        return Translator(
            lang if lang in LANGUAGES else self.config.officer.default_language, self.config.device.timezone
        )

    def status_items(self, t: Translator) -> list[Any]:
        return self.board.items(t, self.desk.readiness())

    def render_fragment(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)

    def page(
        self, request: Request, template: str, t: Translator, officer: Officer | None = None, status: int = 200,
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        html = self.env.get_template(template).render(
            t=t,
            officer=officer,
            csrf=officer.session.csrf if officer else "",
            languages=LANGUAGE_NAMES,
            path=request.url.path,
            status_items=self.status_items(t),
            **context,
        )
        return HTMLResponse(html, status_code=status)


def mount_officer_app(
    app: FastAPI, config: EdgeConfig, identity: DeviceIdentity, sessions: sessionmaker[Session], clock: Clock
) -> OfficerApp:
    """Add the officer app to the device's ``app``; returns it (its desk recovers unsettled attempts)."""
    from edge.officer_app.routes import driver, live, payment, receipts, shift, signin, stops

    officer = OfficerApp(config, identity, sessions, clock)
    app.state.officer = officer
    app.add_middleware(ResponseHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def to_redirect(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return RedirectResponse(exc.url, status_code=303)

    app.add_exception_handler(Redirect, to_redirect)
    for module in (signin, stops, driver, payment, receipts, shift, live):
        app.include_router(module.router)
    if officer.desk.unsettled():
        officer.desk.recover(background=True)
    return officer
