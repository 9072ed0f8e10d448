"""Settling an attempt whose result was unknown ("in doubt"): once, on named evidence, as charged (the
payment is recorded) or not charged. The settlement is its own record (``payment_settlement``: outcome,
method, evidence, who decided and why), written in the same transaction as the attempt's new state.

The evidence, in the order it is sought (``edge.payment.recovery`` gathers the first three):
1. ``repeat_receipt``: the terminal's last receipt (06 20), where the terminal has Repeat Receipt;
2. ``terminal_result``: the result itself, sent by the terminal unsolicited after the line came back;
3. ``end_of_day``: the terminal's End-of-Day totals compared with the device's own attempts;
4. ``decision``: last, an officer's or supervisor's decision with a reason (``decide``), recorded with the
   evidence that was gathered before it, so a supervisor sees what it rested on.

Settling twice, settling an attempt that is not in doubt, or settling an attempt of a protocol that is
already paid is refused with ``SettlementRefused`` and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.structured_log import log_event
from core.sync.records import PaymentSettlementRecordV1
from edge.db.base import transaction
from edge.db.payment_attempts import PaymentAttempt, PaymentEvidence, PaymentSettlement
from edge.db.payments import Payment
from edge.payment.attempt_states import WORDS, AttemptState
from edge.payment.attempts import AttemptJournal
from edge.payment.events import StateChanged
from edge.payment.ports import TerminalResult
from edge.payment.recording import record_payment
from edge.payment.zvt_terminal import result_from_hex
from edge.sync.outbox import enqueue
from hardware.zvt.errors import ApduError

log = logging.getLogger(__name__)

Method = Literal["repeat_receipt", "end_of_day", "terminal_result", "decision"]
METHOD_WORDS = {
    "repeat_receipt": "the terminal's last receipt (Repeat Receipt)",
    "terminal_result": "the result the terminal sent after the line came back",
    "end_of_day": "the terminal's end-of-day totals",
    "decision": "a decision",
}


class SettlementRefused(Exception):
    """The settlement is not allowed; the message says why and what to do instead."""


@dataclass(frozen=True, slots=True)
class Settled:
    attempt_id: str
    protocol_number: str
    charged: bool
    method: str
    payment_id: str | None
    state: AttemptState


def _result_of(row: PaymentAttempt, result: TerminalResult | None) -> TerminalResult:
    """The result to record a charged attempt with: the terminal's, else the one saved, else the attempt's."""
    if result is not None:
        return result
    if row.result_hex:
        try:
            return result_from_hex(row.result_hex)
        except (ApduError, ValueError):
            pass
    return TerminalResult(
        approved=True,
        result_code=0,
        amount_minor=row.amount_minor,
        currency=None,
        trace_no=row.trace_no,
        receipt_no=row.receipt_no,
        original_trace=None,
        terminal_id="",
        terminal_time="",
        auth_code="",
        masked_pan=row.masked_pan,
        scheme=row.card_scheme,
        expiry=row.card_expiry,
        card_hash=row.card_hash,
        raw_hex="",
    )


def settle_in(
    s: Session,
    journal: AttemptJournal,
    row: PaymentAttempt,
    *,
    charged: bool,
    method: Method,
    evidence: str,
    now: datetime,
    evidence_hex: str = "",
    result: TerminalResult | None = None,
    not_charged_state: AttemptState = AttemptState.NOT_CHARGED,
    decided_by: str | None = None,
    reason: str = "",
) -> tuple[Settled, StateChanged]:
    """Settle ``row`` inside ``s``'s transaction; the caller publishes the returned event after COMMIT."""
    if s.scalar(select(PaymentSettlement).where(PaymentSettlement.attempt_id == row.id)) is not None:
        raise SettlementRefused(f"payment attempt {row.id} is already settled; a settlement is final")
    said = f"settled by {METHOD_WORDS[method]}: {evidence}"
    payment_id: str | None = None
    if charged:
        payment_id, event = record_payment(s, journal, row, _result_of(row, result), now, detail=said)
        state = AttemptState.PAID
    else:
        state = not_charged_state
        event = journal.move_in(s, row, state, said, reason=f"{said}{'; ' + reason if reason else ''}"[:2000])
    settlement_id = str(uuid.uuid4())
    s.add(
        PaymentSettlement(
            id=settlement_id,
            attempt_id=row.id,
            protocol_number=row.protocol_number,
            outcome="charged" if charged else "not_charged",
            method=method,
            evidence=evidence,
            evidence_hex=evidence_hex,
            decided_by=decided_by,
            reason=reason,
            payment_id=payment_id,
            settled_at=now,
        )
    )
    enqueue(
        s,
        "payment_settlement",
        PaymentSettlementRecordV1(
            settlement_id=settlement_id,
            attempt_id=row.id,
            protocol_number=row.protocol_number,
            outcome="charged" if charged else "not_charged",
            method=method,
            evidence=evidence[:4000],
            evidence_hex=evidence_hex[:4096],
            decided_by=decided_by,
            reason=reason[:1000],
            amount_minor=row.amount_minor,
            currency=cast(Any, row.currency),
            payment_id=payment_id,
            settled_at=now,
        ).to_body(),
        now=now,
    )
    log_event(
        log,
        "payment.settled",
        attempt=row.id,
        protocol=row.protocol_number,
        outcome="charged" if charged else "not_charged",
        method=method,
        decided_by=decided_by,
    )
    return Settled(row.id, row.protocol_number, charged, method, payment_id, state), event


def evidence_so_far(s: Session, row: PaymentAttempt) -> str:
    """What was learnt about ``row`` before a decision: its own evidence and the end-of-days since it."""
    q = select(PaymentEvidence).where(PaymentEvidence.attempt_id == row.id)
    items = list(s.scalars(q.order_by(PaymentEvidence.id)))
    if row.authorised_at is not None:
        items += list(
            s.scalars(
                select(PaymentEvidence)
                .where(PaymentEvidence.kind == "end_of_day", PaymentEvidence.attempt_id.is_(None))
                .where(PaymentEvidence.at >= row.authorised_at)
                .order_by(PaymentEvidence.id)
            )
        )
    if not items:
        return "no terminal evidence gathered (neither Repeat Receipt nor end-of-day was tried)"
    return "; ".join(f"{e.at:%Y-%m-%d %H:%M}Z {e.kind}: {e.summary}" for e in items)


def decide(
    sessions: sessionmaker[Session],
    journal: AttemptJournal,
    clock: Clock,
    attempt_ref: str,
    *,
    charged: bool,
    reason: str,
    decided_by: str,
) -> Settled:
    """The last resort: a person decides, with a reason, whether the attempt in doubt charged the card."""
    reason, decided_by = reason.strip(), decided_by.strip()
    if not reason:
        raise SettlementRefused(
            "a decision needs a reason (--reason): what shows the card was or was not charged"
        )
    if not decided_by or len(decided_by) > 64:
        raise SettlementRefused(
            "a decision names who decides (--by): a badge or a supervisor's login, 1-64 characters"
        )
    found = journal.find(attempt_ref)
    if found is None:
        raise SettlementRefused(
            f"no payment attempt {attempt_ref!r} on this device (give its id or 8+ characters of it)"
        )
    with transaction(sessions) as s:
        row = s.get(PaymentAttempt, found.id)
        assert row is not None
        done = s.scalar(select(PaymentSettlement).where(PaymentSettlement.attempt_id == row.id))
        if done is not None:
            raise SettlementRefused(
                f"payment attempt {row.id} was already settled on {done.settled_at:%Y-%m-%d %H:%M}Z as "
                f"{done.outcome.replace('_', ' ')} (by {METHOD_WORDS[done.method]}"
                f"{', ' + done.decided_by if done.decided_by else ''}); a settlement is final"
            )
        state = AttemptState(row.state)
        if state in (AttemptState.AUTHORISING, AttemptState.RESULT_PERSISTED):
            raise SettlementRefused(
                f"payment attempt {row.id} is still {state.value} (or was left so by a crash): run "
                "`patrol-edge payment reconcile` first, it asks the terminal"
            )
        if state is not AttemptState.IN_DOUBT:
            raise SettlementRefused(
                f"payment attempt {row.id} is not in doubt ({WORDS[state]}); only an attempt in doubt can be settled"
            )
        paid = s.scalar(select(Payment).where(Payment.protocol_number == row.protocol_number))
        if paid is not None:
            raise SettlementRefused(
                f"protocol {row.protocol_number} is already paid (payment {paid.id}); attempt {row.id} of a paid "
                "protocol cannot be settled here: report it to a supervisor, the driver may have been charged twice"
            )
        settled, event = settle_in(
            s,
            journal,
            row,
            charged=charged,
            method="decision",
            evidence=evidence_so_far(s, row),
            now=clock.now(),
            decided_by=decided_by,
            reason=reason,
        )
    journal.publish(event)
    return settled
