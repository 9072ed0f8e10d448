"""Crash recovery: every payment attempt left in flight (authorising, result persisted, in doubt) is settled
against the terminal's own record (06 20 Repeat Receipt) before anything else happens.

Rules (the terminal is the authority on money; we never guess an approval):
- its last receipt is an approval for the same amount and card (and the same trace if we persisted one),
  not yet recorded → the payment stands: record it once;
- its last receipt is a reversal of that trace / amount, or another transaction → not charged (auto-reversal);
- a persisted approval whose trace the terminal does not show as its last → needs review (never recorded).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.structured_log import log_event
from edge.db import payment_attempts as pa
from edge.db.base import transaction
from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.payment.ports import PaymentTerminal, TerminalRefused, TerminalResult, TerminalUnreachable

log = logging.getLogger(__name__)


def _matches(row: PaymentAttempt, r: TerminalResult) -> bool:
    if r.amount_minor != row.amount_minor:
        return False
    if row.card_hash and r.card_hash and r.card_hash != row.card_hash:
        return False
    return row.trace_no is None or r.trace_no == row.trace_no


def in_flight(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(PaymentAttempt.id).where(PaymentAttempt.state.in_(pa.IN_FLIGHT))))


def reconcile(sessions: sessionmaker[Session], terminal: PaymentTerminal, clock: Clock) -> list[str]:
    """Settle every in-flight attempt; return the ids still unresolved (terminal unreachable)."""
    from edge.payment.workflow import record_payment

    pending = in_flight(sessions)
    if not pending:
        return []
    try:
        last = terminal.repeat_receipt()
    except (TerminalUnreachable, TerminalRefused) as exc:
        log_event(log, "payment.reconcile.unreachable", attempts=len(pending), error=str(exc))
        return pending
    for attempt_id in pending:
        with sessions() as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            already = s.scalar(select(Payment).where(Payment.protocol_number == row.protocol_number))
            trace_used = (
                last is not None
                and last.trace_no is not None
                and s.scalar(select(Payment).where(Payment.trace_no == str(last.trace_no))) is not None
            )
        if already is not None:
            verdict, why = pa.FAILED, "protocol already paid by another attempt"
        elif last is not None and last.approved and not trace_used and _matches(row, last):
            payment_id = record_payment(sessions, attempt_id, last, clock.now())
            log_event(log, "payment.reconciled", attempt=attempt_id, verdict="paid", payment=payment_id)
            continue
        elif (
            last is not None
            and last.is_reversal
            and last.amount_minor == row.amount_minor
            and (row.trace_no is None or last.original_trace == row.trace_no)
        ):
            verdict, why = (
                pa.REVERSED,
                f"terminal reversed trace {last.original_trace} (no acknowledgement reached it)",
            )
        elif row.state == pa.RESULT_PERSISTED:
            verdict, why = (
                pa.NEEDS_REVIEW,
                "approval persisted but the terminal's last receipt does not confirm it",
            )
        else:
            verdict, why = pa.NOT_CHARGED, "the terminal has no booking for this attempt"
        with transaction(sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            row.state = verdict
            row.reason = f"reconciled: {why}"
            row.updated_at = clock.now()
        log_event(log, "payment.reconciled", attempt=attempt_id, verdict=verdict, reason=why)
    return []
