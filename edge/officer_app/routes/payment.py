"""Payment: Pay (idempotent under the key its page was drawn with), the live state in words, the officer's
answers during the own-card check, Cancel (06 B0 on the terminal), and asking the terminal again about an
attempt in doubt."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from edge.officer_app.guards import Officer, app_of, form_checked, signed_in
from edge.officer_app.panels import payment_panel
from edge.officer_app.payment_desk import DeskRefused
from edge.officer_app.routes.driver import driver_lang
from edge.officer_app.routes.stops import load_protocol, protocol_view, stop_url

router = APIRouter()


class PayForm(BaseModel):
    csrf: str = Field(max_length=100)
    n: str = Field(max_length=64)
    key: str = Field(max_length=64)
    lang: str = Field(default="", max_length=2)


class AnswerForm(BaseModel):
    csrf: str = Field(max_length=100)
    n: str = Field(max_length=64)
    yes: bool
    lang: str = Field(default="", max_length=2)


class StopForm(BaseModel):
    csrf: str = Field(max_length=100)
    n: str = Field(max_length=64)
    lang: str = Field(default="", max_length=2)


def pay_url(n: str, lang: str) -> str:
    return stop_url(n, "/pay") + (f"&lang={lang}" if lang else "")


def render_panel(request: Request, officer: Officer, n: str, lang: str) -> str:
    """The payment panel's HTML in the driver's language, as the page and the live stream show it."""
    app = app_of(request)
    d = app.translator(driver_lang(officer, lang))
    with app.sessions() as s:
        panel = payment_panel(
            d, s, n, app.desk.job(n), app.desk.recovery_note.get(n, ""), app.desk.printing(n)
        )
    return app.render_fragment("_pay_panel.html", panel=panel, d=d, t=officer.t, csrf=officer.session.csrf, n=n,
                               lang=d.lang, stop_url=stop_url)  # fmt: skip


@router.post("/stop/pay", response_model=None)
def pay(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[PayForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    app = app_of(request)
    try:
        app.desk.start(form.n, form.key, officer.badge)
    except DeskRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse(pay_url(form.n, form.lang), status_code=303)


@router.get("/stop/pay", response_class=HTMLResponse)
def payment_page(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], n: str, lang: str = ""
) -> HTMLResponse:
    app = app_of(request)
    protocol = load_protocol(app, n)
    d = app.translator(driver_lang(officer, lang))
    return app.page(request, "pay.html", officer.t, officer, d=d, p=protocol_view(d, protocol), n=n,
                    panel_html=render_panel(request, officer, n, d.lang), lang=d.lang, stop_url=stop_url)  # fmt: skip


@router.post("/stop/pay/answer", response_model=None)
def answer(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[AnswerForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    try:
        app_of(request).desk.answer(form.n, form.yes)
    except DeskRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse(pay_url(form.n, form.lang), status_code=303)


@router.post("/stop/pay/cancel", response_model=None)
def cancel(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[StopForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    try:
        app_of(request).desk.cancel(form.n)
    except DeskRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse(pay_url(form.n, form.lang), status_code=303)


@router.post("/stop/pay/recover", response_model=None)
def recover(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[StopForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    app = app_of(request)
    load_protocol(app, form.n)
    app.desk.recover(background=True)
    return RedirectResponse(pay_url(form.n, form.lang), status_code=303)
