"""Receipts: a preview of both copies drawn from the same layout as the paper, the print state of each copy,
"change the paper, then Continue" (prints what is missing) and a numbered duplicate on request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from edge.db.payments import Payment
from edge.officer_app.guards import Officer, app_of, form_checked, signed_in
from edge.officer_app.panels import receipts_view
from edge.officer_app.payment_desk import DeskRefused
from edge.officer_app.receipt_preview import preview, qr_svg
from edge.officer_app.routes.stops import load_protocol, stop_url
from hardware.printer.profiles import profile_by_name

router = APIRouter()


class ReceiptForm(BaseModel):
    csrf: str = Field(max_length=100)
    n: str = Field(max_length=64)
    copy_no: int = Field(default=1, ge=1, le=2)
    back: str = Field(default="receipts", pattern=r"^(receipts|pay)$")
    lang: str = Field(default="", max_length=2)


def _payment(request: Request, n: str) -> Payment:
    app = app_of(request)
    load_protocol(app, n)
    with app.sessions() as s:
        payment = s.scalar(select(Payment).where(Payment.protocol_number == n))
    if payment is None:
        raise HTTPException(404, f"protocol {n!r} has no payment: no receipt")
    return payment


def render_receipts(request: Request, officer: Officer, n: str) -> str:
    """The print state of both copies with Continue, as the page and the live stream show it."""
    app = app_of(request)
    payment = _payment(request, n)
    job = app.desk.job(n)
    with app.sessions() as s:
        view = receipts_view(officer.t, s, payment, bool(job and job.printing) or app.desk.printing(n))
    return app.render_fragment(
        "_receipts_block.html", view=view, t=officer.t, csrf=officer.session.csrf, n=n, back="receipts",
        stop_url=stop_url,
    )  # fmt: skip


@router.get("/stop/receipts", response_class=HTMLResponse)
def receipts_page(request: Request, officer: Annotated[Officer, Depends(signed_in)], n: str) -> HTMLResponse:
    app = app_of(request)
    payment = _payment(request, n)
    service = app.desk.receipt_service()
    profile = profile_by_name(app.config.printer.profile)
    copies = [preview(service.preview(payment.id, c), profile) for c in (1, 2)]
    return app.page(
        request, "receipts.html", officer.t, officer, n=n, copies=copies, stop_url=stop_url,
        block_html=render_receipts(request, officer, n),
    )  # fmt: skip


@router.get("/stop/receipts/qr.svg")
def receipt_qr(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], n: str, copy_no: int = 1
) -> Response:
    app = app_of(request)
    payment = _payment(request, n)
    doc = app.desk.receipt_service().preview(payment.id, 1 if copy_no != 2 else 2)
    data = preview(doc, profile_by_name(app.config.printer.profile)).qr_data
    return Response(qr_svg(data), media_type="image/svg+xml")


def _back(form: ReceiptForm) -> str:
    if form.back == "pay":
        return stop_url(form.n, "/pay") + (f"&lang={form.lang}" if form.lang else "")
    return stop_url(form.n, "/receipts")


@router.post("/stop/receipts/continue", response_model=None)
def print_missing(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[ReceiptForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    _payment(request, form.n)
    app_of(request).desk.print_missing(form.n)
    return RedirectResponse(_back(form), status_code=303)


@router.post("/stop/receipts/duplicate", response_model=None)
def duplicate(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[ReceiptForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    _payment(request, form.n)
    try:
        app_of(request).desk.duplicate(form.n, form.copy_no)
    except DeskRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedirectResponse(_back(form), status_code=303)
