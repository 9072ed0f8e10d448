"""Card-only payment of one protocol's reduced fine, as named steps that follow the ZVT sequence (zvt.md §14):

1. **check the devices**: printer ready (no money is taken when receipts cannot be printed), terminal ready
   (05 01); attempts whose result is unknown are asked about first (``recovery``), and one of this protocol
   blocks it (only it: other protocols can be paid);
2. **open the attempt**;
3. **read the card** (06 C0 asking for the card's 1F14 identity);
4. **own-card check**: the name on the card against the driver's, with the officer's confirmation where the
   matcher cannot decide; a refused card, or a question that cannot be answered, is released on the terminal
   (06 B0);
5. **authorise** exactly the reduced amount (06 01, pay type "the card just read"); the result is committed
   BEFORE it is acknowledged, and a different card (1F14) or amount is answered ``84`` so the terminal
   reverses it;
6. **record** the payment, the protocol paid and their records for sync.

Every step is published as an event (``events``) and the attempt moves only along ``attempt_states``.
A protocol is paid once; a payment the terminal did not approve is never recorded.

``cancel`` (the officer's Cancel, from another thread) stops the payment where it stands: before the card is
read nothing reaches the terminal; during Read Card or the Authorisation the terminal is sent 06 B0 at once
(it may refuse during an Authorisation: then its result is taken as usual, and an approval stands).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
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
from core.sync.records import OwnCardCheckRecordV1
from edge.db.base import transaction
from edge.db.payment_attempts import PaymentAttempt, PaymentSettlement
from edge.db.payments import Payment
from edge.db.protocols import Protocol
from edge.payment.attempt_states import AttemptState
from edge.payment.attempts import AttemptJournal, AttemptView
from edge.payment.events import (
    Notice,
    Outcome,
    PaymentEvents,
    PaymentFinished,
    Step,
    StepStarted,
)
from edge.payment.ports import (
    CardRead,
    OfficerDesk,
    PaymentTerminal,
    PrinterCheck,
    PromptUnanswered,
    Readiness,
    TerminalRefused,
    TerminalResult,
    TerminalUnreachable,
)
from edge.payment.recording import record_payment
from edge.payment.recovery import Recovery
from edge.recorder.bookmarks import add_bookmark
from edge.sync.outbox import enqueue
from hardware.zvt.result_codes import result_text

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


class PaymentAborted(PaymentError):
    """The transaction was aborted on the terminal (06 B0) because the payment could not go on."""


class PaymentDeclined(PaymentError):
    pass


class CurrencyRejected(PaymentError):
    pass


class PaymentInDoubt(PaymentError):
    """Whether the card was charged is not known: the attempt blocks its protocol until it is settled."""

    def __init__(self, message: str, attempt_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.attempt_ids = list(attempt_ids)


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
    found_by: str | None = None  # set when recovery, not this run, found the protocol paid (its method)


@dataclass(frozen=True, slots=True)
class Order:
    """What is being paid: the protocol, the exact amount, and the name the card must carry."""

    protocol_number: str
    amount: Money
    driver_name: str


Checkpoint = Callable[[str], None]


def in_doubt_text(protocol_number: str, attempts: Sequence[AttemptView]) -> str:
    """What the officer is told about attempts in doubt of one protocol, and what to do next."""
    which = "; ".join(
        f"attempt {a.id} ({Money(a.amount_minor, currency(a.currency)).format()}"
        f"{', card ' + a.masked_pan if a.masked_pan else ''}"
        f"{', authorised ' + f'{a.authorised_at:%Y-%m-%d %H:%M}Z' if a.authorised_at else ''})"
        f"{': ' + a.reason if a.reason else ''}"
        for a in attempts
    )
    first = attempts[0].short_id if attempts else "ATTEMPT"
    return (
        f"payment of protocol {protocol_number} is in doubt, it is not known whether the card was charged: "
        f"{which}. Do not take this fine again until it is settled; other protocols can be paid. Next: "
        f"(1) with the terminal connected, `patrol-edge pay {protocol_number}` or `patrol-edge payment reconcile` "
        "asks the terminal for its last receipt; (2) at the end of the shift `patrol-edge payment end-of-day` "
        "compares the terminal's totals with this device's payments; (3) if neither settles it, decide on what "
        f"you know: `patrol-edge payment settle {first} --charged|--not-charged --reason '…' --by BADGE`."
    )


def _validate(session: Session, protocol_number: str, today_utc: datetime) -> Protocol:
    """Bad input gets a clear error before anything is stored."""
    protocol = session.get(Protocol, protocol_number)
    if protocol is None:
        raise ProtocolNotFound(f"protocol {protocol_number!r} does not exist on this device")
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


def _paid_fine(p: Payment, found_by: str | None = None) -> PaidFine:
    return PaidFine(
        p.id,
        p.protocol_number,
        Money(p.amount_minor, currency(p.currency)),
        p.masked_pan,
        p.receipt_no,
        p.trace_no,
        p.auth_code,
        p.name_check,
        found_by,
    )


class PaymentWorkflow:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        terminal: PaymentTerminal,
        printer: PrinterCheck,
        officer: OfficerDesk,
        clock: Clock,
        officer_badge: str,
        events: PaymentEvents | None = None,
        checkpoint: Checkpoint | None = None,
        card_timeout_s: int = 60,
        timezone: str = "Asia/Almaty",
    ) -> None:
        self.sessions = sessions
        self.terminal = terminal
        self.printer = printer
        self.officer = officer
        self.clock = clock
        self.officer_badge = officer_badge
        self.events = events or PaymentEvents(clock)
        self.checkpoint = checkpoint or (lambda name: None)
        self.card_timeout_s = card_timeout_s
        self.journal = AttemptJournal(sessions, clock, self.events)
        self.recovery = Recovery(sessions, terminal, clock, self.journal, timezone)
        self._cancelled = threading.Event()
        self._running: Step | None = None
        # a result the terminal sends unsolicited is saved (and settles its attempt) before any answer
        terminal.on_stray_result = self.recovery.take_stray

    # --------------------------------------------------------------------- pay
    def cancel(self) -> None:
        """The officer's Cancel: the payment stops at the next step, or at once on the terminal (06 B0)."""
        self._cancelled.set()
        if self._running in (Step.READ_CARD, Step.AUTHORISE):
            self.terminal.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _stop_if_cancelled(self, attempt_id: str | None) -> None:
        if not self.cancelled:
            return
        if attempt_id is not None:
            self.journal.move(
                attempt_id, AttemptState.ABORTED, "cancelled by the officer",
                reason="cancelled by the officer before the card was read; nothing was charged",
            )  # fmt: skip
        raise PaymentAborted("payment cancelled by the officer; nothing was charged")

    def pay(self, protocol_number: str) -> PaidFine:
        attempt_id: str | None = None
        try:
            order = self.check_devices(protocol_number)
            if isinstance(order, PaidFine):
                paid = order
            else:
                self._stop_if_cancelled(None)
                attempt_id = self.open_attempt(order)
                self._stop_if_cancelled(attempt_id)
                card = self.read_card(attempt_id)
                self.own_card_check(attempt_id, order, card)
                result = self.authorise(attempt_id, order, card)
                paid = result if isinstance(result, PaidFine) else self.record(attempt_id, result)
        except PaymentError as exc:
            outcome: Outcome = (
                "in_doubt"
                if isinstance(exc, PaymentInDoubt)
                else "aborted"
                if isinstance(exc, PaymentAborted)
                else "not_paid"
            )
            self.events.publish(
                PaymentFinished(protocol_number, attempt_id, outcome, str(exc), self.clock.now())
            )
            raise
        finally:
            self._running = None
        self.events.publish(
            PaymentFinished(
                protocol_number, attempt_id, "paid", f"paid: protocol {protocol_number}", self.clock.now()
            )
        )
        return paid

    def _step(self, protocol_number: str, step: Step) -> None:
        self._running = step
        self.events.publish(StepStarted(protocol_number, step, self.clock.now()))

    def _notice(self, protocol_number: str, text: str) -> None:
        self.events.publish(Notice(protocol_number, text, self.clock.now()))

    # ---------------------------------------------------------- 1. check the devices
    def check_devices(self, protocol_number: str) -> Order | PaidFine:
        self._step(protocol_number, Step.CHECK_DEVICES)
        order = self._order(protocol_number)
        if isinstance(order, PaidFine):
            return order
        readiness = self.printer.check()
        if readiness.state is Readiness.BLOCKED:
            raise PrinterNotReady(f"printer not ready: {readiness.reason}; no payment taken")
        if readiness.state is Readiness.WARNING:
            self._notice(protocol_number, f"printer warning: {readiness.reason}")
        try:
            status = self.terminal.status()
        except (TerminalUnreachable, TerminalRefused) as exc:
            raise TerminalNotReady(f"card terminal not reachable: {exc}") from exc
        if not status.ready:
            raise TerminalNotReady(f"card terminal not ready: {status.text} (0x{status.code:02X})")
        # attempts a crash or a lost line left unsettled: the terminal is asked before anything else
        self.recovery.reconcile()
        order = self._order(protocol_number)
        if isinstance(order, PaidFine):
            return order
        doubt = self.journal.result_unknown(protocol_number)
        if doubt:
            raise PaymentInDoubt(in_doubt_text(protocol_number, doubt), [a.id for a in doubt])
        return order

    def _order(self, protocol_number: str) -> Order | PaidFine:
        with self.sessions() as s:
            protocol = _validate(s, protocol_number, self.clock.now())
            payment = s.scalar(select(Payment).where(Payment.protocol_number == protocol_number))
            if payment is not None:
                found = s.scalar(select(PaymentSettlement).where(PaymentSettlement.payment_id == payment.id))
                if found is not None:
                    return _paid_fine(payment, found.method)
                raise AlreadyPaid(
                    f"protocol {protocol_number} is already paid; a protocol can be paid only once"
                )
            if protocol.status == "paid":
                raise AlreadyPaid(
                    f"protocol {protocol_number} is already paid; a protocol can be paid only once"
                )
            return Order(
                protocol_number,
                Money(protocol.reduced_minor, currency(protocol.currency)),
                protocol.driver_name,
            )

    # ---------------------------------------------------------- 2. open the attempt
    def open_attempt(self, order: Order) -> str:
        self._step(order.protocol_number, Step.OPEN_ATTEMPT)
        return self.journal.open(order.protocol_number, order.amount, self.officer_badge)

    # ---------------------------------------------------------- 3. read the card
    def read_card(self, attempt_id: str) -> CardRead:
        view = self.journal.get(attempt_id)
        assert view is not None
        self._step(view.protocol_number, Step.READ_CARD)
        try:
            card = self.terminal.read_card(self.card_timeout_s)
        except TerminalRefused as exc:
            if self.cancelled:
                why = "cancelled by the officer: the terminal aborted Read Card (06 B0)"
                self.journal.move(attempt_id, AttemptState.ABORTED, why, result_code=exc.code,
                                  reason=f"{why}; nothing was charged")  # fmt: skip
                raise PaymentAborted(f"payment cancelled by the officer: {why}; nothing was charged") from exc
            self.journal.move(
                attempt_id, AttemptState.CARD_FAILED, exc.text, result_code=exc.code, reason=str(exc)
            )
            raise CardProblem(f"card not read: {exc.text}") from exc
        except TerminalUnreachable as exc:
            self.journal.move(attempt_id, AttemptState.FAILED, "terminal lost", reason=str(exc))
            raise TerminalNotReady(f"card terminal lost during Read Card: {exc}") from exc
        self.journal.move(
            attempt_id,
            AttemptState.CARD_READ,
            f"****{card.last4} {card.scheme}".strip(),
            masked_pan=card.masked_pan,
            card_scheme=card.scheme,
            card_expiry=card.expiry,
            card_hash=card.card_hash,
            cardholder_name=card.holder_name,
            card_read_at=self.clock.now(),
        )
        if self.cancelled:  # the card came in as the officer cancelled: released, nothing charged
            raise self._abort(attempt_id, "cancelled by the officer")
        return card

    # ---------------------------------------------------------- 4. own-card check
    def own_card_check(self, attempt_id: str, order: Order, card: CardRead) -> None:
        number = order.protocol_number
        self._step(number, Step.OWN_CARD_CHECK)
        try:
            outcome, reason, attested_by = self._name_check(order.driver_name, card)
        except PromptUnanswered as exc:
            raise self._abort(attempt_id, f"the own-card question could not be answered ({exc})") from exc
        except BaseException as exc:
            self._abort(attempt_id, f"the own-card check failed ({type(exc).__name__}: {exc})")
            raise
        checked_at = self.clock.now()
        accepted = outcome is NameMatch.MATCH or attested_by is not None
        with transaction(self.sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            row.name_check = outcome.name
            row.name_check_reason = reason
            row.name_check_by = attested_by or (self.officer_badge if outcome is NameMatch.MATCH else None)
            row.name_check_at = checked_at
            enqueue(
                s,
                "own_card_check",
                OwnCardCheckRecordV1(
                    check_id=str(uuid.uuid4()),
                    protocol_number=number,
                    cardholder_name=card.holder_name,
                    driver_name=order.driver_name,
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
                number,
                checked_at - OWN_CARD_CHECK_LEAD,
                checked_at + OWN_CARD_CHECK_TAIL,
                now=checked_at,
            )
            refused = None
            if not accepted:
                refused = self.journal.move_in(
                    s, row, AttemptState.REFUSED, f"{outcome.name} ({reason})",
                    reason=f"own-card check {outcome.name}: {reason}",
                )  # fmt: skip
        log_event(log, "payment.own_card_check", attempt=attempt_id, outcome=outcome.name,
                  officer=self.officer_badge, at=checked_at.isoformat())  # fmt: skip
        self._notice(number, f"own-card check: {outcome.name} ({reason})")
        if refused is not None:
            self._release_card(attempt_id)
            self.journal.publish(refused)
            raise OwnCardRefused(
                f"card refused: own-card check {outcome.name.lower()} ({reason}); card released"
            )

    def _name_check(self, driver_name: str, card: CardRead) -> tuple[NameMatch, str, str | None]:
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

    def _release_card(self, attempt_id: str) -> str:
        """06 B0: the terminal ends the transaction and releases the card; returns what happened, in words."""
        try:
            self.terminal.abort()
        except (TerminalRefused, TerminalUnreachable) as exc:
            log_event(log, "payment.abort_failed", attempt=attempt_id, error=str(exc))
            return f"the terminal did not take the abort ({exc}); it ends the transaction at its own timeout"
        return "the transaction was aborted on the terminal (06 B0), the card released"

    def _abort(self, attempt_id: str, why: str) -> PaymentAborted:
        said = self._release_card(attempt_id)
        self.journal.move(attempt_id, AttemptState.ABORTED, why, reason=f"{why}; {said}")
        return PaymentAborted(f"payment aborted: {why}; {said}; nothing was charged")

    # ---------------------------------------------------------- 5. authorise
    def authorise(self, attempt_id: str, order: Order, card: CardRead) -> TerminalResult | PaidFine:
        amount = order.amount
        if self.cancelled:
            raise self._abort(attempt_id, "cancelled by the officer")
        self._step(order.protocol_number, Step.AUTHORISE)
        self.journal.move(
            attempt_id, AttemptState.AUTHORISING, amount.format(), authorised_at=self.clock.now()
        )
        self.checkpoint("authorising")

        def on_result(result: TerminalResult) -> bool:
            """Commit the terminal's result BEFORE it is acknowledged; False makes the terminal reverse it."""
            same_card = not card.card_hash or result.card_hash == card.card_hash
            approved_ok = result.approved and result.amount_minor == amount.minor and same_card
            fields = dict(result_hex=result.raw_hex, result_code=result.result_code,
                          trace_no=result.trace_no, receipt_no=result.receipt_no)  # fmt: skip
            self.checkpoint("before_persist")
            if approved_ok:
                self.journal.move(
                    attempt_id, AttemptState.RESULT_PERSISTED, f"trace {result.trace_no}", **fields
                )
            elif result.approved:
                why = (
                    "card hash 1F14 differs from Read Card: reversal requested"
                    if not same_card
                    else f"amount {result.amount_minor} differs from {amount.minor}: reversal requested"
                )
                self.journal.move(attempt_id, AttemptState.REVERSED, why, reason=why, **fields)
            else:
                why = f"{result_text(result.result_code)} (result code 0x{result.result_code:02X})"
                self.journal.move(attempt_id, AttemptState.DECLINED, why, reason=f"declined: {why}", **fields)
            self.checkpoint("after_persist")
            return approved_ok or not result.approved

        self.recovery.live = attempt_id
        try:
            auth = self.terminal.authorise(amount, on_result)
        except TerminalRefused as exc:
            cancelled = " (cancelled by the officer: 06 B0)" if self.cancelled else ""
            self.journal.move(
                attempt_id, AttemptState.FAILED, exc.text + cancelled, result_code=exc.code,
                reason=str(exc) + cancelled,
            )  # fmt: skip
            if self.cancelled:
                raise PaymentAborted(
                    f"payment cancelled by the officer: the terminal ended the authorisation ({exc.text}); "
                    "nothing was charged"
                ) from exc
            if exc.code == 0x6F:
                raise CurrencyRejected(
                    f"the card terminal does not accept {amount.currency.code}; nothing was charged"
                ) from exc
            raise PaymentDeclined(f"payment not made: {exc.text}") from exc
        except TerminalUnreachable as exc:
            return self._lost(attempt_id, order, exc)
        finally:
            self.recovery.live = None
        self.checkpoint("after_ack")
        if auth.approved and auth.result is not None:
            return auth.result
        view = self.journal.get(attempt_id)
        assert view is not None
        if view.state is AttemptState.REVERSED:
            raise PaymentDeclined(f"payment not made, reversed: {view.reason}")
        if view.state is AttemptState.AUTHORISING:  # ended by 06 1E without a result
            why = f"{result_text(auth.result_code)} (result code 0x{auth.result_code:02X})"
            self.journal.move(attempt_id, AttemptState.DECLINED, why, result_code=auth.result_code,
                              reason=f"declined: {why}")  # fmt: skip
        code = auth.result_code
        if self.cancelled:
            raise PaymentAborted(
                f"payment cancelled by the officer: the terminal ended it ({result_text(code)}); nothing was charged"
            )
        raise PaymentDeclined(f"payment declined: {result_text(code)} (result code 0x{code:02X})")

    def _lost(self, attempt_id: str, order: Order, exc: TerminalUnreachable) -> PaidFine:
        """The line died while the terminal held the result: in doubt, then the terminal is asked at once."""
        why = f"the terminal line was lost during the authorisation ({exc})"
        view = self.journal.get(attempt_id)
        if view is not None and view.state in (AttemptState.AUTHORISING, AttemptState.RESULT_PERSISTED):
            self.journal.move(attempt_id, AttemptState.IN_DOUBT, why, reason=why)
        self.recovery.reconcile()
        view = self.journal.get(attempt_id)
        assert view is not None
        if view.state is AttemptState.PAID and view.payment_id is not None:
            with self.sessions() as s:
                payment = s.get(Payment, view.payment_id)
                assert payment is not None
                return _paid_fine(payment)
        if view.state in (AttemptState.NOT_CHARGED, AttemptState.REVERSED):
            raise PaymentDeclined(
                f"payment not made: {why}; the terminal shows it was not charged ({view.reason})"
            ) from exc
        raise PaymentInDoubt(in_doubt_text(order.protocol_number, [view]), [attempt_id]) from exc

    # ---------------------------------------------------------- 6. record
    def record(self, attempt_id: str, result: TerminalResult) -> PaidFine:
        view = self.journal.get(attempt_id)
        assert view is not None
        self._step(view.protocol_number, Step.RECORD)
        with transaction(self.sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            payment_id, event = record_payment(
                s,
                self.journal,
                row,
                result,
                self.clock.now(),
                f"receipt {result.receipt_no}, auth {result.auth_code}",
            )
        self.journal.publish(event)
        with self.sessions() as s:
            payment = s.get(Payment, payment_id)
            assert payment is not None
            return _paid_fine(payment)


__all__ = ["NotPayableOnSpot", "PaidFine", "PaymentError", "PaymentWorkflow", "in_doubt_text"]
