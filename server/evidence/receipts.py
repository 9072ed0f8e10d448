"""Both receipts of a paid stop, drawn again from the synced records with the device's own layout
(``core.receipt_layout``): the protocol, the payment, the officer, and the latest receipt event of each copy
(record v2: duplicate number, the signed QR code, IIN masking, time zone, unit, software version). A copy
synced by a device too old to send these is drawn with the device's defaults and says so in its QR."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.receipt_code import receipt_url
from core.receipt_layout import CopySpec, ReceiptData, data_from_rows, render_copy
from server.db.protocols import Officer, Payment, Protocol
from server.db.sync import ReceiptEvent
from server.evidence.receipt_image import render_png

DEFAULT_MASK = {1: True, 2: False}
NO_CODE = "код проверки не синхронизирован / verification code not synced"


def _latest_print(events: Sequence[ReceiptEvent], copy_no: int) -> ReceiptEvent | None:
    printed = [e for e in events if e.copy_no == copy_no and e.event in ("printed", "printing")]
    return max(printed, key=lambda e: (e.event == "printed", e.occurred_at), default=None)


def receipt_copies(
    protocol: Protocol,
    payment: Payment,
    officer: Officer | None,
    events: Sequence[ReceiptEvent],
    public_url: str,
    zone: str,
) -> dict[int, tuple[ReceiptData, CopySpec, str | None]]:
    """Copy number → (what it shows, how it was printed, the QR's signed code if synced) for each copy the
    device printed or sent to its printer."""
    out: dict[int, tuple[ReceiptData, CopySpec, str | None]] = {}
    for copy_no in (1, 2):
        event = _latest_print(events, copy_no)
        if event is None:
            continue
        code = event.verify_code
        printed_at: datetime = event.occurred_at
        spec = CopySpec(
            copy_no=copy_no,
            duplicate_no=event.duplicate_no or 0,
            printed_at=printed_at,
            mask_iin=DEFAULT_MASK[copy_no] if event.mask_iin is None else event.mask_iin,
            verify_url=receipt_url(public_url, code) if code else NO_CODE,
            timezone=event.timezone or zone,
            software_version=event.software_version or "patrolkit",
        )
        officer_name = officer.full_name if officer else payment.officer_badge
        data = data_from_rows(payment, protocol, officer_name, event.unit or (officer.unit if officer else ""))
        out[copy_no] = (data, spec, code)
    return out


def receipt_documents(
    protocol: Protocol,
    payment: Payment,
    officer: Officer | None,
    events: Sequence[ReceiptEvent],
    public_url: str,
    zone: str,
) -> dict[int, tuple[bytes, str | None]]:
    """Copy number → (PNG, the QR's signed code if synced) for each copy the device printed or sent."""
    copies = receipt_copies(protocol, payment, officer, events, public_url, zone)
    return {n: (render_png(render_copy(data, spec)), code) for n, (data, spec, code) in copies.items()}
