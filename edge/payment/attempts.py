"""The journal of payment attempts: opens an attempt and moves it from state to state, only along the table
of ``attempt_states``, each move committed with its synced record (``payment_attempt``, when the new state is
one a supervisor sees) in one transaction, then published as a ``StateChanged`` event."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.money import Money
from core.structured_log import log_event
from core.sync.records import PaymentAttemptRecordV2
from edge.db.base import transaction
from edge.db.payment_attempts import PaymentAttempt
from edge.payment.attempt_states import (
    BEFORE_AUTHORISATION,
    RESULT_UNKNOWN,
    SYNCED,
    AttemptState,
    check_transition,
)
from edge.payment.events import PaymentEvent, PaymentEvents, StateChanged
from edge.sync.outbox import enqueue
from hardware.zvt.result_codes import result_text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttemptView:
    """An attempt as read from the journal (detached from any session)."""

    id: str
    protocol_number: str
    state: AttemptState
    amount_minor: int
    currency: str
    started_at: datetime
    updated_at: datetime
    authorised_at: datetime | None
    masked_pan: str
    result_code: int | None
    trace_no: int | None
    receipt_no: int | None
    reason: str
    payment_id: str | None

    @property
    def short_id(self) -> str:
        return self.id[:8]


def view(row: PaymentAttempt) -> AttemptView:
    return AttemptView(
        row.id,
        row.protocol_number,
        AttemptState(row.state),
        row.amount_minor,
        row.currency,
        row.started_at,
        row.updated_at,
        row.authorised_at,
        row.masked_pan,
        row.result_code,
        row.trace_no,
        row.receipt_no,
        row.reason,
        row.payment_id,
    )


def attempt_record(row: PaymentAttempt) -> PaymentAttemptRecordV2:
    code = row.result_code
    return PaymentAttemptRecordV2(
        attempt_id=row.id,
        protocol_number=row.protocol_number,
        state=cast(Any, row.state),
        revision=row.revision,
        amount_minor=row.amount_minor,
        currency=cast(Any, row.currency),
        officer_badge=row.officer_badge,
        started_at=row.started_at,
        updated_at=row.updated_at,
        masked_pan=row.masked_pan,
        card_scheme=row.card_scheme,
        name_check=cast(Any, row.name_check),
        result_code=code,
        result_text=result_text(code) if code is not None else "",
        reason=row.reason[:2000],
        trace_no=row.trace_no,
        receipt_no=row.receipt_no,
        payment_id=row.payment_id,
        card_read_at=row.card_read_at,
        authorising_at=row.authorised_at,
    )


class AttemptJournal:
    def __init__(
        self, sessions: sessionmaker[Session], clock: Clock, events: PaymentEvents | None = None
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.events = events or PaymentEvents(clock)

    def publish(self, *events: PaymentEvent | None) -> None:
        for event in events:
            if event is not None:
                self.events.publish(event)

    def open(self, protocol_number: str, amount: Money, officer_badge: str) -> str:
        attempt_id = str(uuid.uuid4())
        now = self.clock.now()
        with transaction(self.sessions) as s:
            s.add(
                PaymentAttempt(
                    id=attempt_id,
                    protocol_number=protocol_number,
                    state=AttemptState.STARTED.value,
                    amount_minor=amount.minor,
                    currency=amount.currency.code,
                    officer_badge=officer_badge,
                    started_at=now,
                    updated_at=now,
                    masked_pan="",
                    card_scheme="",
                    card_expiry="",
                    card_hash="",
                    name_check_reason="",
                    reason="",
                    revision=1,
                )
            )
        log_event(log, "payment.started", attempt=attempt_id, protocol=protocol_number, amount=amount.minor)
        self.publish(
            StateChanged(
                protocol_number,
                attempt_id,
                None,
                AttemptState.STARTED,
                f"{amount.format()}, attempt {attempt_id[:8]}",
                now,
            )
        )
        return attempt_id

    def move(self, attempt_id: str, to: AttemptState, detail: str = "", **fields: object) -> None:
        """Commit ``attempt_id`` → ``to`` (and ``fields``), then publish it; ``IllegalTransition`` if the
        table does not allow it (nothing is changed then)."""
        with transaction(self.sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            if row is None:
                raise KeyError(f"no payment attempt {attempt_id}")
            event = self.move_in(s, row, to, detail, **fields)
        self.publish(event)

    def move_in(
        self, s: Session, row: PaymentAttempt, to: AttemptState, detail: str = "", **fields: object
    ) -> StateChanged:
        """The move inside the caller's transaction; the caller publishes the returned event after COMMIT."""
        before = check_transition(row.id, row.state, to)
        now = self.clock.now()
        for name, value in fields.items():
            setattr(row, name, value)
        row.state = to.value
        row.updated_at = now
        row.revision = (row.revision or 0) + 1
        if to in SYNCED:
            s.flush()
            enqueue(s, "payment_attempt", attempt_record(row).to_body(), now=now)
        log_event(
            log, "payment.attempt.state", attempt=row.id, before=before.value, state=to.value, detail=detail
        )
        return StateChanged(row.protocol_number, row.id, before, to, detail, now)

    # ------------------------------------------------------------------ queries
    def get(self, attempt_id: str) -> AttemptView | None:
        with self.sessions() as s:
            row = s.get(PaymentAttempt, attempt_id)
            return view(row) if row is not None else None

    def find(self, ref: str) -> AttemptView | None:
        """An attempt by its id or a unique prefix of it (at least 8 characters)."""
        exact = self.get(ref)
        if exact is not None or len(ref) < 8:
            return exact
        with self.sessions() as s:
            rows = s.scalars(select(PaymentAttempt).where(PaymentAttempt.id.startswith(ref)).limit(2)).all()
            return view(rows[0]) if len(rows) == 1 else None

    def with_states(
        self, states: frozenset[AttemptState], protocol_number: str | None = None
    ) -> list[AttemptView]:
        with self.sessions() as s:
            q = select(PaymentAttempt).where(PaymentAttempt.state.in_([x.value for x in states]))
            if protocol_number is not None:
                q = q.where(PaymentAttempt.protocol_number == protocol_number)
            return [view(r) for r in s.scalars(q.order_by(PaymentAttempt.started_at))]

    def result_unknown(self, protocol_number: str | None = None) -> list[AttemptView]:
        return self.with_states(RESULT_UNKNOWN, protocol_number)

    def before_authorisation(self) -> list[AttemptView]:
        return self.with_states(BEFORE_AUTHORISATION)
