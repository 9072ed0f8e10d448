"""Card-only payment of one protocol's reduced fine, step by step as in issue 3:

printer check → terminal status → Read Card → own-card check (name, officer) → Authorisation of the exact
reduced amount → same-card check (1F14) → commit the result BEFORE acknowledging it → Payment + outbox.

Never charge twice, never record a payment the terminal did not approve: a protocol is paid once, and any
attempt left in flight by a crash is reconciled (``recovery.reconcile``) before anything else happens.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.fines import FineError, NotPayableOnSpot, load_jurisdiction
from core.fines.jurisdiction import Sanction
from core.money import Money, currency
from core.names import NameMatch, check_name
from core.structured_log import log_event
from core.sync.records import OwnCardCheckRecordV1, PaymentRecordV1
from edge.db import payment_attempts as pa
from edge.db.base import transaction
from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.db.protocols import Officer, Protocol
from edge.payment.ports import (
    CardRead,
    OfficerDesk,
    PaymentTerminal,
    PrinterCheck,
    Readiness,
    TerminalRefused,
    TerminalResult,
    TerminalUnreachable,
)
from edge.recorder.bookmarks import add_bookmark
from edge.stops import protocol_record
from edge.sync.outbox import enqueue

# A bookmark around the own-card check: the minute before it (card read, ID shown) and a little after.
OWN_CARD_CHECK_LEAD = timedelta(seconds=60)
OWN_CARD_CHECK_TAIL = timedelta(seconds=15)

log = logging.getLogger(__name__)


class PaymentError(Exception):
    """A payment did not happen; the message says why in words the officer understands."""


class ProtocolNotFound(PaymentError):
    pass


class AlreadyPaid(PaymentError):
    pass


class NotPayable(PaymentError):
    pass


class InvalidAmount(PaymentError):
    pass


class PrinterNotReady(PaymentError):
    pass


class TerminalNotReady(PaymentError):
    pass


class CardProblem(PaymentError):
    pass


class OwnCardRefused(PaymentError):
    pass


class PaymentDeclined(PaymentError):
    pass


class CurrencyRejected(PaymentError):
    pass


class PaymentInDoubt(PaymentError):
    """The outcome is unknown (line lost); it is reconciled with the terminal before the next payment."""


@dataclass(frozen=True, slots=True)
class PaidFine:
    payment_id: str
    protocol_number: str
    amount: Money
    masked_pan: str
    receipt_no: str
    trace_no: str
    auth_code: str
    name_check: str


Checkpoint = Callable[[str], None]


def _validate(session: Session, protocol_number: str, today_utc: datetime) -> Protocol:
    """Bad input gets a clear error before anything is stored."""
    protocol = session.get(Protocol, protocol_number)
    if protocol is None:
        raise ProtocolNotFound(f"protocol {protocol_number!r} does not exist on this device")
    if protocol.status == "paid" or session.scalar(
        select(Payment).where(Payment.protocol_number == protocol_number)
    ):
        raise AlreadyPaid(f"protocol {protocol_number} is already paid; a protocol can be paid only once")
    try:
        jur = load_jurisdiction(protocol.jurisdiction.lower())
        article = jur.article(protocol.article)
    except FineError as exc:
        raise NotPayable(f"protocol {protocol_number}: {exc}") from exc
    if not article.simplified or article.sanction is not Sanction.FINE:
        raise NotPayable(
            f"article {protocol.article} allows no on-the-spot payment (sanction {article.sanction.value})"
        )
    if protocol.reduced_minor <= 0:
        raise InvalidAmount(
            f"protocol {protocol_number}: reduced fine {protocol.reduced_minor} is not a positive amount"
        )
    if today_utc.date() > protocol.discount_deadline:
        raise NotPayable(
            f"the reduced fine of protocol {protocol_number} could be paid until {protocol.discount_deadline}"
        )
    return protocol


class PaymentWorkflow:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        terminal: PaymentTerminal,
        printer: PrinterCheck,
        officer: OfficerDesk,
        clock: Clock,
        officer_badge: str,
        on_progress: Callable[[str], None] | None = None,
        checkpoint: Checkpoint | None = None,
        card_timeout_s: int = 60,
    ) -> None:
        self.sessions = sessions
        self.terminal = terminal
        self.printer = printer
        self.officer = officer
        self.clock = clock
        self.officer_badge = officer_badge
        self.progress = on_progress or (lambda text: None)
        self.checkpoint = checkpoint or (lambda name: None)
        self.card_timeout_s = card_timeout_s

    # ------------------------------------------------------------------ helpers
    def _set(self, attempt_id: str, state: str, **fields: object) -> None:
        with transaction(self.sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            row.state = state
            row.updated_at = self.clock.now()
            for k, v in fields.items():
                setattr(row, k, v)
        log_event(log, "payment.attempt.state", attempt=attempt_id, state=state)

    # --------------------------------------------------------------------- pay
    def pay(self, protocol_number: str) -> PaidFine:
        from edge.payment.recovery import reconcile

        unresolved = reconcile(self.sessions, self.terminal, self.clock)
        if unresolved:
            raise PaymentInDoubt(
                f"{len(unresolved)} earlier payment(s) could not be reconciled with the terminal yet; "
                "reconnect the terminal and try again"
            )
        with self.sessions() as s:
            protocol = _validate(s, protocol_number, self.clock.now())
            amount = Money(protocol.reduced_minor, currency(protocol.currency))
            full_minor = protocol.full_minor
            driver_name = protocol.driver_name

        readiness = self.printer.check()
        if readiness.state is Readiness.BLOCKED:
            raise PrinterNotReady(f"printer not ready: {readiness.reason}; no payment taken")
        if readiness.state is Readiness.WARNING:
            self.progress(f"printer warning: {readiness.reason}")

        self.progress("checking terminal")
        try:
            status = self.terminal.status()
        except (TerminalUnreachable, TerminalRefused) as exc:
            raise TerminalNotReady(f"card terminal not reachable: {exc}") from exc
        if not status.ready:
            raise TerminalNotReady(f"card terminal not ready: {status.text} (0x{status.code:02X})")

        attempt_id = str(uuid.uuid4())
        now = self.clock.now()
        with transaction(self.sessions) as s:
            s.add(
                PaymentAttempt(
                    id=attempt_id,
                    protocol_number=protocol_number,
                    state=pa.STARTED,
                    amount_minor=amount.minor,
                    currency=amount.currency.code,
                    officer_badge=self.officer_badge,
                    started_at=now,
                    updated_at=now,
                    masked_pan="",
                    card_scheme="",
                    card_expiry="",
                    card_hash="",
                    name_check_reason="",
                    reason="",
                )
            )
        log_event(log, "payment.started", attempt=attempt_id, protocol=protocol_number, amount=amount.minor)

        self.progress("insert card")
        try:
            card = self.terminal.read_card(self.card_timeout_s)
        except TerminalRefused as exc:
            self._set(attempt_id, pa.CARD_FAILED, reason=str(exc))
            raise CardProblem(f"card not read: {exc.text}") from exc
        except TerminalUnreachable as exc:
            self._set(attempt_id, pa.FAILED, reason=str(exc))
            raise TerminalNotReady(f"card terminal lost during Read Card: {exc}") from exc
        self._set(
            attempt_id,
            pa.CARD_READ,
            masked_pan=card.masked_pan,
            card_scheme=card.scheme,
            card_expiry=card.expiry,
            card_hash=card.card_hash,
            cardholder_name=card.holder_name,
        )
        self.progress(f"card ****{card.last4} read")

        outcome, reason, attested_by = self._own_card_check(driver_name, card)
        check_id = str(uuid.uuid4())
        checked_at = self.clock.now()
        accepted = outcome in (NameMatch.MATCH,) or attested_by is not None
        with transaction(self.sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            row.name_check = outcome.name
            row.name_check_reason = reason
            row.name_check_by = attested_by or (self.officer_badge if outcome is NameMatch.MATCH else None)
            row.name_check_at = checked_at
            row.updated_at = checked_at
            if not accepted:
                row.state = pa.REFUSED
                row.reason = f"own-card check {outcome.name}: {reason}"
            enqueue(
                s,
                "own_card_check",
                OwnCardCheckRecordV1(
                    check_id=check_id,
                    protocol_number=protocol_number,
                    cardholder_name=card.holder_name,
                    driver_name=driver_name,
                    result=outcome.name,
                    reason=f"{reason}; officer {self.officer_badge}",
                    attested_by=attested_by,
                    checked_at=checked_at,
                ).to_body(),
                now=checked_at,
            )
            # the footage of the officer comparing the card with the ID must be easy to find
            add_bookmark(
                s,
                "own_card_check",
                protocol_number,
                checked_at - OWN_CARD_CHECK_LEAD,
                checked_at + OWN_CARD_CHECK_TAIL,
            )
        log_event(
            log,
            "payment.own_card_check",
            attempt=attempt_id,
            outcome=outcome.name,
            officer=self.officer_badge,
            at=checked_at.isoformat(),
        )
        if not accepted:
            try:
                self.terminal.abort()
            except (TerminalRefused, TerminalUnreachable) as exc:
                log_event(log, "payment.abort_failed", attempt=attempt_id, error=str(exc))
            self.progress("card released")
            raise OwnCardRefused(
                f"card refused: own-card check {outcome.name.lower()} ({reason}); card released"
            )

        return self._authorise(
            attempt_id, protocol_number, amount, full_minor, card, outcome, reason, attested_by
        )

    def _own_card_check(self, driver_name: str, card: CardRead) -> tuple[NameMatch, str, str | None]:
        check = check_name(driver_name, card.holder_name)
        if check.outcome is NameMatch.MATCH:
            return check.outcome, check.reason, None
        if check.outcome is NameMatch.PROBABLE:
            ok = self.officer.confirm_probable(driver_name, card, check.reason)
            return (
                check.outcome,
                check.reason + ("; officer confirmed" if ok else "; officer did not confirm"),
                (self.officer_badge if ok else None),
            )
        if check.outcome is NameMatch.UNAVAILABLE:
            ok = self.officer.attest_unavailable(driver_name, card)
            return (
                check.outcome,
                check.reason
                + ("; officer compared the embossed name with the ID" if ok else "; officer did not attest"),
                (self.officer_badge if ok else None),
            )
        return check.outcome, check.reason, None

    def _authorise(
        self,
        attempt_id: str,
        protocol_number: str,
        amount: Money,
        full_minor: int,
        card: CardRead,
        outcome: NameMatch,
        reason: str,
        attested_by: str | None,
    ) -> PaidFine:
        self._set(attempt_id, pa.AUTHORISING)
        self.checkpoint("authorising")
        self.progress(
            f"authorising {amount.minor / amount.currency.minor_per_major:.2f} {amount.currency.code}"
        )

        def on_result(result: TerminalResult) -> bool:
            same_card = not card.card_hash or result.card_hash == card.card_hash
            approved_ok = result.approved and result.amount_minor == amount.minor and same_card
            state = pa.RESULT_PERSISTED if approved_ok else (pa.REVERSED if result.approved else pa.DECLINED)
            why = (
                ""
                if approved_ok or not result.approved
                else (
                    "card hash 1F14 differs from Read Card: reversal requested"
                    if not same_card
                    else "amount differs: reversal requested"
                )
            )
            self.checkpoint("before_persist")
            self._set(
                attempt_id,
                state,
                result_hex=result.raw_hex,
                result_code=result.result_code,
                trace_no=result.trace_no,
                receipt_no=result.receipt_no,
                reason=why,
            )
            self.checkpoint("after_persist")
            return approved_ok or not result.approved

        try:
            auth = self.terminal.authorise(amount, on_result)
        except TerminalRefused as exc:
            self._set(
                attempt_id,
                pa.DECLINED if exc.code != 0x6F else pa.FAILED,
                result_code=exc.code,
                reason=str(exc),
            )
            if exc.code == 0x6F:
                raise CurrencyRejected(
                    f"the card terminal does not accept {amount.currency.code}; nothing was charged"
                ) from exc
            raise PaymentDeclined(f"payment not made: {exc.text}") from exc
        except TerminalUnreachable as exc:
            self._set(attempt_id, pa.IN_DOUBT, reason=str(exc))
            from edge.payment.recovery import reconcile

            with contextlib.suppress(TerminalUnreachable):
                reconcile(self.sessions, self.terminal, self.clock)
            with self.sessions() as s:
                row = s.get(PaymentAttempt, attempt_id)
                assert row is not None
                if row.state == pa.PAID and row.payment_id:
                    return self._paid(s, row.payment_id)
                state = row.state
            if state == pa.IN_DOUBT:
                raise PaymentInDoubt(
                    "the terminal line was lost during the payment; the result will be reconciled before the next payment"
                ) from exc
            raise PaymentDeclined(f"payment not made ({state}) after the line was lost") from exc
        self.checkpoint("after_ack")
        if not auth.approved or auth.result is None:
            with self.sessions() as s:
                row = s.get(PaymentAttempt, attempt_id)
                state = row.state if row else pa.DECLINED
            if state == pa.REVERSED:
                raise PaymentDeclined(
                    "the paid card is not the card that was checked (1F14 differs): reversed"
                )
            self._set(
                attempt_id, pa.DECLINED, result_code=auth.result_code, reason="declined by the terminal/host"
            )
            raise PaymentDeclined(
                f"payment declined by the card issuer (result code 0x{auth.result_code:02X})"
            )
        payment_id = record_payment(self.sessions, attempt_id, auth.result, self.clock.now(), full_minor)
        with self.sessions() as s:
            return self._paid(s, payment_id)

    def _paid(self, s: Session, payment_id: str) -> PaidFine:
        p = s.get(Payment, payment_id)
        assert p is not None
        self.progress("approved")
        return PaidFine(
            p.id,
            p.protocol_number,
            Money(p.amount_minor, currency(p.currency)),
            p.masked_pan,
            p.receipt_no,
            p.trace_no,
            p.auth_code,
            p.name_check,
        )


def record_payment(
    sessions: sessionmaker[Session],
    attempt_id: str,
    result: TerminalResult,
    now: datetime,
    full_minor: int | None = None,
) -> str:
    """Store the approved payment, mark the protocol paid and queue both for sync, in ONE transaction."""
    payment_id = str(uuid.uuid4())
    with transaction(sessions) as s:
        row = s.get(PaymentAttempt, attempt_id)
        assert row is not None
        protocol = s.get(Protocol, row.protocol_number)
        assert protocol is not None
        payment = Payment(
            id=payment_id,
            protocol_number=row.protocol_number,
            amount_minor=result.amount_minor if result.amount_minor is not None else row.amount_minor,
            currency=row.currency,
            full_amount_minor=full_minor if full_minor is not None else protocol.full_minor,
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
        row.state = pa.PAID
        row.payment_id = payment_id
        row.updated_at = now
        if row.result_hex is None:
            row.result_hex = result.raw_hex
            row.trace_no = result.trace_no
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
        add_bookmark(s, "payment", payment.protocol_number, min(row.started_at, now), now)
        officer = s.get(Officer, protocol.officer_badge)
        # the protocol's new status (paid) syncs too, after the payment that caused it
        enqueue(
            s,
            "protocol",
            protocol_record(protocol, officer.full_name if officer else None).to_body(),
            now=now,
        )
    log_event(
        log, "payment.approved", payment=payment_id, attempt=attempt_id, protocol=payment.protocol_number
    )
    return payment_id


__all__ = ["NotPayableOnSpot", "PaidFine", "PaymentError", "PaymentWorkflow", "record_payment"]
