"""The driver's screen: the offence, the fine, the reduced amount and until when, in large type and in the
driver's language (Kazakh, Russian or English, switched on the screen); the own-card rule; the driver's
agreement to the simplified procedure, recorded with the language it was read in; then Pay."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from edge.officer_app.guards import Officer, app_of, form_checked, signed_in
from edge.officer_app.i18n import LANGUAGES
from edge.officer_app.routes.stops import load_protocol, protocol_view, stop_url
from edge.stops import record_agreement

router = APIRouter()


class AgreeForm(BaseModel):
    csrf: str = Field(max_length=100)
    n: str = Field(max_length=64)
    lang: str = Field(default="ru", max_length=2)


def driver_lang(officer: Officer, lang: str) -> str:
    return lang if lang in LANGUAGES else officer.t.lang


@router.get("/stop/driver", response_class=HTMLResponse)
def driver_screen(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], n: str, lang: str = ""
) -> HTMLResponse:
    app = app_of(request)
    protocol = load_protocol(app, n)
    d = app.translator(driver_lang(officer, lang))
    return app.page(
        request, "driver.html", officer.t, officer, d=d, p=protocol_view(d, protocol), n=n, stop_url=stop_url,
        pay_key=uuid.uuid4().hex, paid=protocol.status == "paid",
    )  # fmt: skip


@router.post("/stop/agree", response_model=None)
def agree(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[AgreeForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    app = app_of(request)
    load_protocol(app, form.n)
    lang = driver_lang(officer, form.lang)
    record_agreement(app.sessions, form.n, lang, app.clock)
    return RedirectResponse(stop_url(form.n, "/driver") + f"&lang={lang}", status_code=303)
