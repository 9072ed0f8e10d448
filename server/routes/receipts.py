"""The public receipt verification page ``GET /r/{code}``: is the QR genuine, and what does the server know of it.

Genuine = the code decodes and its Ed25519 signature verifies with the public key registered for the device it
names. A forged or altered code is shown as not genuine. When genuine, the payment is shown as the server has it
once the device has synced it; until then the page says "genuine, not yet synced".
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select

from core.money import Money, currency
from core.receipt_code import ReceiptCodeError, decode_receipt_code, verify_signed
from core.signing import BadSignature, public_from_b64
from server.db.devices import Device
from server.db.protocols import Payment

router = APIRouter(tags=["receipts"])


def _money(minor: int, numeric: int) -> str:
    try:
        return Money(minor, currency(numeric)).format().replace("\u00a0", " ")
    except ValueError:
        return f"{minor} (currency {numeric})"


def check_code(request: Request, code: str) -> tuple[int, dict[str, Any]]:
    """The verdict on ``code``: (HTTP status, JSON body)."""
    try:
        signed = decode_receipt_code(code)
    except ReceiptCodeError as exc:
        return 400, {"verdict": "malformed", "genuine": False, "reason": str(exc)}
    claim = signed.claim
    claimed = {
        "device_id": claim.device_id,
        "protocol_number": claim.protocol_no,
        "trace_no": claim.rrn,
        "amount": _money(claim.amount_minor, claim.currency_numeric),
        "amount_minor": claim.amount_minor,
        "currency_numeric": claim.currency_numeric,
        "paid_at": claim.paid_at.isoformat(),
    }
    with request.app.state.sessions() as session:
        device = session.get(Device, claim.device_id)
        if device is None:
            return 404, {
                "verdict": "not_genuine",
                "genuine": False,
                "reason": "unknown device",
                "claim": claimed,
            }
        try:
            verify_signed(signed, public_from_b64(device.public_key_b64))
        except BadSignature:
            return 404, {
                "verdict": "not_genuine",
                "genuine": False,
                "reason": "signature does not verify (forged or altered)",
                "claim": claimed,
            }
        payment = session.scalar(
            select(Payment).where(
                Payment.protocol_number == claim.protocol_no, Payment.device_id == claim.device_id
            )
        )
        body: dict[str, Any] = {"verdict": "genuine", "genuine": True, "claim": claimed, "synced": False}
        if not device.active:
            body["note"] = "the device has since been deactivated"
        if payment is None:
            body["reason"] = "genuine, not yet synced"
            return 200, body
        cur = currency(payment.currency)
        body["synced"] = True
        body["payment"] = {
            "protocol_number": payment.protocol_number,
            "amount": _money(payment.amount_minor, cur.numeric),
            "status": payment.status,
            "trace_no": payment.trace_no,
            "approved_at": payment.approved_at.isoformat(),
        }
        matches = (
            payment.amount_minor == claim.amount_minor
            and cur.numeric == claim.currency_numeric
            and payment.trace_no == claim.rrn
        )
        body["matches_synced_payment"] = matches
        body["reason"] = (
            "genuine; matches the synced payment"
            if matches
            else "genuine signature, but it differs from the synced payment"
        )
        return 200, body


def _page(status: int, body: dict[str, Any]) -> str:
    verdict = body["verdict"]
    title = {
        "genuine": "ПОДЛИННАЯ КВИТАНЦИЯ / ТҮПНҰСҚА ТҮБІРТЕК / GENUINE",
        "not_genuine": "НЕ ПОДЛИННАЯ / ТҮПНҰСҚА ЕМЕС / NOT GENUINE",
        "malformed": "КОД ПОВРЕЖДЁН / NOT A VALID RECEIPT CODE",
    }[verdict]
    rows = []
    for key in ("claim", "payment"):
        for name, value in (body.get(key) or {}).items():
            rows.append(
                f"<tr><th>{html.escape(key)}.{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
            )
    return (
        "<!doctype html><html lang='ru'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'><title>Проверка квитанции</title></head>"
        f"<body data-verdict='{verdict}'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(str(body.get('reason', '')))}</p>"
        f"<p>{html.escape(str(body.get('note', '')))}</p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )


@router.get("/r/{code}", response_model=None)
def verify_receipt(request: Request, code: str, format: str = "html") -> Response:
    """Public verification page of a receipt's QR code (``?format=json`` for machines)."""
    status, body = check_code(request, code)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics[f"receipt_verify_{body['verdict']}_total"] += 1
    if format == "json":
        return JSONResponse(body, status_code=status)
    return HTMLResponse(_page(status, body), status_code=status)
