"""Recording an approved payment: the payment row, the protocol marked paid, the attempt moved to paid, and
their synced records (payment, bookmark, protocol, payment attempt), all in the caller's ONE transaction.

Used by the workflow after the terminal's approval was saved and acknowledged, and by settlement when
evidence (the terminal's last receipt, a result it sent unsolicited, its end-of-day totals, a decision)
shows that an attempt in doubt was charged.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from core.structured_log import log_event
from core.sync.records import PaymentRecordV1
from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.db.protocols import Officer, Protocol
from edge.payment.attempt_states import AttemptState
from edge.payment.attempts import AttemptJournal
from edge.payment.events import StateChanged
from edge.payment.ports import TerminalResult
from edge.recorder.bookmarks import add_bookmark
from edge.stops import protocol_record
from edge.sync.outbox import enqueue

log = logging.getLogger(__name__)


def record_payment(
    s: Session,
    journal: AttemptJournal,
    row: PaymentAttempt,
    result: TerminalResult,
    now: datetime,
    detail: str = "",
) -> tuple[str, StateChanged]:
    """Store the approved payment of attempt ``row`` inside ``s``'s transaction; returns the payment id and
    the attempt's ``StateChanged`` event (publish it after COMMIT). ``IllegalTransition`` if the attempt
    cannot become paid (then the caller's transaction rolls back whole)."""
    protocol = s.get(Protocol, row.protocol_number)
    if protocol is None:
        raise KeyError(f"protocol {row.protocol_number} of attempt {row.id} is not on this device")
    payment_id = str(uuid.uuid4())
    payment = Payment(
        id=payment_id,
        protocol_number=row.protocol_number,
        amount_minor=result.amount_minor if result.amount_minor is not None else row.amount_minor,
        currency=row.currency,
        full_amount_minor=protocol.full_minor,
        status="approved",
        card_scheme=result.scheme or row.card_scheme,
        masked_pan=result.masked_pan or row.masked_pan,
        card_expiry=result.expiry or row.card_expiry,
        card_hash=result.card_hash or row.card_hash,
        cardholder_name=row.cardholder_name,
        name_check=row.name_check or "UNAVAILABLE",
        name_check_reason=row.name_check_reason,
        name_check_attested_by=row.name_check_by,
        auth_code=result.auth_code,
        trace_no=str(result.trace_no or ""),
        receipt_no=str(result.receipt_no or ""),
        terminal_id=result.terminal_id,
        terminal_time=result.terminal_time,
        officer_badge=row.officer_badge,
        approved_at=now,
    )
    s.add(payment)
    protocol.status = "paid"
    if row.result_hex is None and result.raw_hex:
        row.result_hex = result.raw_hex
        row.result_code = result.result_code
    if row.trace_no is None:
        row.trace_no = result.trace_no
    if row.receipt_no is None:
        row.receipt_no = result.receipt_no
    s.flush()
    enqueue(
        s,
        "payment",
        PaymentRecordV1(
            id=payment.id,
            protocol_number=payment.protocol_number,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            full_amount_minor=payment.full_amount_minor,
            status="approved",
            card_scheme=payment.card_scheme,
            masked_pan=payment.masked_pan,
            card_expiry=payment.card_expiry,
            card_hash=payment.card_hash,
            cardholder_name=payment.cardholder_name,
            name_check=payment.name_check,
            name_check_reason=payment.name_check_reason,
            name_check_attested_by=payment.name_check_attested_by,
            auth_code=payment.auth_code,
            trace_no=payment.trace_no,
            receipt_no=payment.receipt_no,
            terminal_id=payment.terminal_id,
            terminal_time=payment.terminal_time,
            officer_badge=payment.officer_badge,
            approved_at=now,
        ).to_body(),
        now=now,
    )
    add_bookmark(s, "payment", payment.protocol_number, min(row.started_at, now), now, now=now)
    officer = s.get(Officer, protocol.officer_badge)
    # the protocol's new status (paid) syncs too, after the payment that caused it
    enqueue(
        s, "protocol", protocol_record(protocol, officer.full_name if officer else None).to_body(), now=now
    )
    event = journal.move_in(s, row, AttemptState.PAID, detail, payment_id=payment_id)
    log_event(log, "payment.approved", payment=payment_id, attempt=row.id, protocol=payment.protocol_number)
    return payment_id, event
