"""Payments of fines reported by providers (banks, egov, kiosks), as the sequence a payment goes through:

1. **repeat?** (provider, reference) is stored already: the same request gets the same answer again; the same
   reference with other content is refused (``PaymentConflict``) and changes nothing.
2. **find the fine** by its number, locked for update. None yet (the protocol may sync later): the payment is
   kept ``unmatched``; the daily run applies it once the fine exists, or opens a refund case after
   ``unmatched_refund_days`` (``refund_unmatched``).
3. **check the amount** against what is due on the value date (``lifecycle_engine.settle``): exact settles the
   fine; more settles it and the excess goes to a refund case; less, another currency, a second payment (also
   of a fine paid on the spot) or a fine that can no longer be paid: nothing is applied and the whole amount
   goes to a refund case. Never accepted silently.
4. **record** the payment, the fine's new state and its history in one transaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.fines import FineError
from core.fines.lifecycle_engine import PaymentOutcome, RefundReason, settle
from core.structured_log import log_event
from server.db.fine_payments import ProviderPayment
from server.db.fines import Fine
from server.fines.fine_record import columns_after, facts_of, rows_of, select_rows
from server.fines.issuing import refund_row
from server.fines.rules_book import calendar_for, local_day, rules_by_label
from server.fines.step_effects import Changes, event_row, write

log = logging.getLogger(__name__)
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./_:-]{0,63}$")
FINE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./_-]{0,63}$")


class PaymentConflict(ValueError):
    """A provider reference already used for a different payment."""


class ProviderPaymentIn(BaseModel):
    """A payment as a provider reports it (the JSON body of ``POST /api/fines/payments``)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(pattern=REFERENCE.pattern, description="the provider's own id of this payment")
    fine: str = Field(pattern=FINE_NUMBER.pattern, description="the fine's number (protocol number)")
    amount_minor: StrictInt = Field(gt=0, le=10**12)
    currency: Literal["KZT", "GEL"]
    value_date: date


class PaymentAnswer(BaseModel):
    reference: str
    fine: str
    outcome: Literal["applied", "refund", "unmatched"]
    reason: str = ""
    due_minor: int | None = None
    applied_minor: int = 0
    refund_minor: int = 0
    repeated: bool = False


@dataclass(frozen=True)
class _Result:
    outcome: str
    reason: str
    due: int | None
    applied: int
    refund: int


def _answer(p: ProviderPayment, repeated: bool) -> PaymentAnswer:
    return PaymentAnswer(
        reference=p.reference,
        fine=p.fine_number,
        outcome=p.outcome,
        reason=p.reason,
        due_minor=p.due_minor,
        applied_minor=p.applied_minor,
        refund_minor=p.amount_minor - p.applied_minor if p.outcome != "unmatched" else 0,
        repeated=repeated,
    )


def lock_fine_by_number(session: Session, number: str) -> int | None:
    """The id of fine ``number``, its row locked until the transaction ends (PostgreSQL: the row; SQLite: the
    database's write lock)."""
    return session.execute(
        update(Fine).where(Fine.number == number).values(updated_at=Fine.updated_at).returning(Fine.id)
    ).scalar()


def record_payment(
    session: Session, provider: str, req: ProviderPaymentIn, request_sha256: str, now: datetime
) -> PaymentAnswer:
    """Steps 1-4 of the module docstring, in the caller's transaction."""
    stored = session.scalars(
        select(ProviderPayment).where(
            ProviderPayment.provider == provider, ProviderPayment.reference == req.reference
        )
    ).first()
    if stored is not None:
        if stored.request_sha256 != request_sha256:
            raise PaymentConflict(f"reference {req.reference!r} was already used for another payment")
        return _answer(stored, repeated=True)
    payment = ProviderPayment(
        provider=provider,
        reference=req.reference,
        fine_number=req.fine,
        fine_id=None,
        amount_minor=req.amount_minor,
        currency=req.currency,
        value_date=req.value_date,
        received_at=now,
        request_sha256=request_sha256,
        outcome="unmatched",
        reason="",
        due_minor=None,
        applied_minor=0,
    )
    session.add(payment)
    session.flush()
    fine_id = lock_fine_by_number(session, req.fine)
    if fine_id is not None:
        _apply(session, payment, fine_id, now)
    log_event(
        log, "fines.provider_payment", provider=provider, reference=req.reference, fine=req.fine,
        outcome=payment.outcome, reason=payment.reason,
    )  # fmt: skip
    return _answer(payment, repeated=False)


def _apply(session: Session, payment: ProviderPayment, fine_id: int, now: datetime) -> None:
    """Settle ``payment`` against fine ``fine_id`` (locked); sets the payment's outcome."""
    row = rows_of(session.execute(select_rows().where(Fine.id == fine_id)).all())[0]
    rules = rules_by_label(session, row.rules)
    facts = facts_of(row)
    changes = Changes()
    payment.fine_id = fine_id
    note = f"{payment.provider} payment {payment.reference} of {payment.value_date}"
    if payment.currency != row.currency:
        payment.outcome, payment.reason = "refund", RefundReason.WRONG_CURRENCY.value
        changes.refunds.append(
            refund_row(payment.reason, payment.amount_minor, payment.currency, now, note,
                       fine_id=fine_id, provider_payment_id=payment.id)
        )  # fmt: skip
        write(session, changes)
        return
    try:
        s = settle(rules, facts, payment.value_date, payment.amount_minor)
    except FineError as exc:  # the rules cannot take it: the money goes back, with the reason kept
        payment.outcome, payment.reason = "refund", RefundReason.NOT_PAYABLE.value
        changes.refunds.append(
            refund_row(payment.reason, payment.amount_minor, payment.currency, now, f"{note}: {exc}",
                       fine_id=fine_id, provider_payment_id=payment.id)
        )  # fmt: skip
        write(session, changes)
        return
    payment.due_minor = s.due.minor if s.due else None
    payment.applied_minor = s.applied_minor
    payment.outcome = "applied" if s.outcome is PaymentOutcome.APPLIED else "refund"
    payment.reason = s.reason.value if s.reason else ""
    if s.outcome is PaymentOutcome.APPLIED:
        today = local_day(rules, now)
        columns = columns_after(
            row.state, row.state_since, s.facts, rules, today, calendar_for(row.jurisdiction), now
        )
        changes.fines.append(
            {
                "id": fine_id,
                **columns,
                "paid_minor": s.applied_minor,
                "paid_ref": f"{payment.provider}:{payment.reference}",
            }
        )
        if s.happening is not None:
            changes.events.append(
                event_row(fine_id, s.happening, now) | {"detail": f"{s.happening.detail}; {note}"}
            )
    if s.refund_minor:
        changes.refunds.append(
            refund_row(payment.reason, s.refund_minor, payment.currency, now, note,
                       fine_id=fine_id, provider_payment_id=payment.id)
        )  # fmt: skip
    write(session, changes)


def refund_unmatched(session: Session, day: date, after_days: int, now: datetime) -> int:
    """Apply unmatched payments whose fine exists now; refund those still unmatched after ``after_days``."""
    refunds = 0
    unmatched = session.scalars(
        select(ProviderPayment).where(ProviderPayment.outcome == "unmatched").order_by(ProviderPayment.id)
    ).all()
    for payment in unmatched:
        fine_id = lock_fine_by_number(session, payment.fine_number)
        if fine_id is not None:
            _apply(session, payment, fine_id, now)
            refunds += payment.outcome == "refund"
            continue
        if payment.received_at.date() + timedelta(days=after_days) <= day:
            payment.outcome, payment.reason = "refund", RefundReason.UNKNOWN_FINE.value
            note = f"{payment.provider} payment {payment.reference}: no fine {payment.fine_number} after {after_days} days"
            write(session, Changes(refunds=[
                refund_row(payment.reason, payment.amount_minor, payment.currency, now, note,
                           provider_payment_id=payment.id)
            ]))  # fmt: skip
            refunds += 1
    return refunds
