"""The roadside payment workflow against the terminal simulator over a pty, on a migrated device database."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.db.protocols import Protocol
from edge.db.recording import Bookmark
from edge.payment import workflow as wf
from edge.payment.attempt_states import IllegalTransition
from edge.payment.events import (
    PaymentEvent,
    PaymentEvents,
    PaymentFinished,
    StateChanged,
    Subscription,
    TerminalShows,
    as_dict,
)
from edge.payment.ports import CardRead, PrinterReadiness, PromptUnanswered, Readiness
from edge.payment.workflow import PaymentWorkflow
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from edge.sync.outbox import OutboxContent, OutboxRecord
from simulators.zvt.cards import card
from simulators.zvt.scenarios import Scenario
from simulators.zvt.terminal import SimulatedTerminal

pytestmark = pytest.mark.timeout(60)


@dataclass
class StatePrinter:
    """Printer readiness from a state a test sets (stands where the receipts module's check goes)."""

    state: Readiness = Readiness.READY
    reason: str = ""
    calls: int = 0

    def check(self) -> PrinterReadiness:
        self.calls += 1
        return PrinterReadiness(self.state, self.reason)


@dataclass
class Desk:
    confirm: bool = True
    attest: bool = True
    asked: list[str] = field(default_factory=list)
    on_attest: Callable[[], None] | None = None

    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        self.asked.append("confirm")
        return self.confirm

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        self.asked.append("attest")
        if self.on_attest is not None:
            self.on_attest()
        return self.attest


def _flow(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    fake_clock: FakeClock,
    printer: StatePrinter | None = None,
    desk: Desk | None = None,
    seen: list[PaymentEvent] | None = None,
) -> PaymentWorkflow:
    events = PaymentEvents(fake_clock)
    if seen is not None:
        events.subscribe(seen.append)
    terminal.on_display = events.terminal_shows
    return PaymentWorkflow(
        sessions, terminal, printer or StatePrinter(), desk or Desk(), fake_clock, "B-1", events=events
    )


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Payment)) or 0,
            s.scalar(select(func.count()).select_from(PaymentAttempt)) or 0,
            s.scalar(select(func.count()).select_from(OutboxRecord)) or 0,
        )


def _outbox(sessions: sessionmaker[Session]) -> list[tuple[str, dict]]:
    with sessions() as s:
        rows = s.execute(
            select(OutboxRecord.record_type, OutboxContent.body)
            .join(OutboxContent, OutboxContent.seq == OutboxRecord.seq)
            .order_by(OutboxRecord.seq)
        ).all()
        return [(record_type, json.loads(body)) for record_type, body in rows]


def test_approved_payment_is_stored_queued_and_charged_once(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    seen: list[PaymentEvent] = []
    paid = _flow(sessions, terminal, fake_clock, seen=seen).pay("P-1")
    assert (
        paid.amount.minor == 1_083_000
        and paid.masked_pan == "4***********1014"
        and paid.name_check == "MATCH"
    )
    with sessions() as s:
        payment = s.get(Payment, paid.payment_id)
        assert payment is not None and payment.card_hash == card("visa_named").card_hash.hex()
        assert s.get(Protocol, "P-1") is not None and s.get(Protocol, "P-1").status == "paid"  # type: ignore[union-attr]
        attempt = s.scalars(select(PaymentAttempt)).one()
        assert attempt.state == "paid" and attempt.result_hex and attempt.result_hex.startswith("040f")
        assert attempt.name_check_by == "B-1" and attempt.name_check_at is not None
    queued = _outbox(sessions)
    assert [t for t, _ in queued] == [
        "own_card_check",
        "bookmark",
        "payment",
        "bookmark",
        "protocol",
        "payment_attempt",
    ]
    assert queued[-2][1]["status"] == "paid" and queued[-2][1]["number"] == "P-1"
    assert queued[-1][1]["state"] == "paid" and queued[-1][1]["payment_id"] == paid.payment_id
    # the footage of the own-card check and of the payment is bookmarked under the protocol number
    assert [(b["label"], b["protocol_number"]) for t, b in queued if t == "bookmark"] == [
        ("own_card_check", "P-1"),
        ("payment", "P-1"),
    ]
    assert len(sim.journal.booked()) == 1 and sim.journal.booked()[0].amount_minor == 1_083_000
    # each state of the attempt published once, in the order of the ZVT sequence; the terminal's texts as it sent them
    assert [e.after.value for e in seen if isinstance(e, StateChanged)] == [
        "started",
        "card_read",
        "authorising",
        "result_persisted",
        "paid",
    ]
    assert [e.text for e in seen if isinstance(e, TerminalShows)].count("insert card") == 1


def test_bookmarks_of_a_payment_are_stamped_by_the_workflows_clock(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    began = fake_clock.now()
    _flow(sessions, terminal, fake_clock).pay("P-1")
    with sessions() as s:
        made = s.scalars(select(Bookmark.created_at)).all()
        queued = s.scalars(select(OutboxRecord.created_at).where(OutboxRecord.record_type == "bookmark")).all()
    # the fake clock stands months away from wall time: a bookmark stamped by the wall clock falls outside
    assert len(made) == len(queued) == 2
    assert all(began <= at <= fake_clock.now() for at in [*made, *queued])


def test_second_payment_for_same_protocol_is_refused(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    flow = _flow(sessions, terminal, fake_clock)
    flow.pay("P-1")
    before = _counts(sessions)
    with pytest.raises(wf.AlreadyPaid, match="already paid"):
        flow.pay("P-1")
    assert _counts(sessions) == before
    assert len(sim.journal.booked()) == 1


@pytest.mark.parametrize(
    ("number", "error", "message"),
    [
        ("NOPE", wf.ProtocolNotFound, "does not exist"),
        ("P-WARN", wf.NotPayable, "no on-the-spot payment"),
        ("P-ZERO", wf.InvalidAmount, "not a positive amount"),
    ],
)
def test_bad_input_gets_a_clear_error_and_stores_nothing(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
    number: str,
    error: type[Exception],
    message: str,
) -> None:
    before = _counts(sessions)
    with pytest.raises(error, match=message):
        _flow(sessions, terminal, fake_clock).pay(number)
    assert _counts(sessions) == before
    assert sim.commands_seen == []


def test_terminal_rejecting_kzt_stores_no_payment(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.scenario = Scenario.WRONG_CURRENCY
    with pytest.raises(wf.CurrencyRejected, match="does not accept KZT"):
        _flow(sessions, terminal, fake_clock).pay("P-1")
    assert _counts(sessions)[0] == 0 and sim.journal.booked() == []


def test_name_mismatch_refuses_releases_card_and_records_why(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.card = "visa_other"
    with pytest.raises(wf.OwnCardRefused, match="mismatch"):
        _flow(sessions, terminal, fake_clock).pay("P-1")
    assert sim.commands_seen[-1] == "abort"
    with sessions() as s:
        attempt = s.scalars(select(PaymentAttempt)).one()
        assert (
            attempt.state == "refused" and attempt.name_check == "MISMATCH" and "MISMATCH" in attempt.reason
        )
    assert [(t, b.get("result", b.get("label", b.get("state")))) for t, b in _outbox(sessions)] == [
        ("own_card_check", "MISMATCH"),
        ("bookmark", "own_card_check"),
        ("payment_attempt", "refused"),
    ]
    assert sim.journal.all() == []


@pytest.mark.parametrize("attest", [True, False])
def test_unavailable_name_needs_the_officer_attestation(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
    attest: bool,
) -> None:
    sim.settings.card = "mc_chip"
    desk = Desk(attest=attest)
    flow = _flow(sessions, terminal, fake_clock, desk=desk)
    if attest:
        paid = flow.pay("P-1")
        assert paid.name_check == "UNAVAILABLE"
        with sessions() as s:
            assert s.get(Payment, paid.payment_id).name_check_attested_by == "B-1"  # type: ignore[union-attr]
    else:
        with pytest.raises(wf.OwnCardRefused):
            flow.pay("P-1")
        assert sim.journal.booked() == []
    assert desk.asked == ["attest"]


def test_declined_payment_is_not_recorded_but_synced_with_its_result_code(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.scenario = Scenario.DECLINED
    with pytest.raises(wf.PaymentDeclined, match="declined by the card issuer"):
        _flow(sessions, terminal, fake_clock).pay("P-1")
    with sessions() as s:
        assert s.scalars(select(PaymentAttempt)).one().state == "declined"
        assert s.get(Protocol, "P-1").status == "open"  # type: ignore[union-attr]
    assert _counts(sessions)[0] == 0
    synced = [b for t, b in _outbox(sessions) if t == "payment_attempt"]
    assert len(synced) == 1 and synced[0]["state"] == "declined"
    assert synced[0]["result_code"] == sim.settings.decline_code
    assert synced[0]["result_text"] == "declined by the card issuer"


def test_blocked_printer_stops_before_the_terminal(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    with pytest.raises(wf.PrinterNotReady, match="paper out"):
        _flow(sessions, terminal, fake_clock, printer=StatePrinter(Readiness.BLOCKED, "paper out")).pay("P-1")
    assert sim.commands_seen == [] and _counts(sessions)[:2] == (0, 0)


def test_busy_terminal_is_reported(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.scenario = Scenario.BUSY
    with pytest.raises(wf.TerminalNotReady, match="busy"):
        _flow(sessions, terminal, fake_clock).pay("P-1")


def test_card_swapped_after_read_card_is_reversed(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.card = "mc_chip"

    def swap() -> None:
        sim.last_card = card("girocard")

    with pytest.raises(wf.PaymentDeclined, match="1F14"):
        _flow(sessions, terminal, fake_clock, desk=Desk(on_attest=swap)).pay("P-1")
    assert [c.status for c in sim.journal.all()] == ["reversed_by_ecr"]
    assert _counts(sessions)[0] == 0


class Unanswerable(Desk):
    """The officer's question meets end of input (the CLI's stdin closed)."""

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        raise PromptUnanswered("end of input, no answer")


def test_a_question_that_cannot_be_answered_aborts_on_the_terminal_and_says_so(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.card = "mc_chip"  # no name on the card: the officer must attest
    seen: list[PaymentEvent] = []
    with pytest.raises(
        wf.PaymentAborted, match=r"could not be answered \(end of input.*06 B0.*nothing was charged"
    ):
        _flow(sessions, terminal, fake_clock, desk=Unanswerable(), seen=seen).pay("P-1")
    assert sim.commands_seen[-1] == "abort" and "authorisation" not in sim.commands_seen
    with sessions() as s:
        attempt = s.scalars(select(PaymentAttempt)).one()
    assert attempt.state == "aborted" and "06 B0" in attempt.reason
    assert [b["state"] for t, b in _outbox(sessions) if t == "payment_attempt"] == ["aborted"]
    finished = [e for e in seen if isinstance(e, PaymentFinished)]
    assert [e.outcome for e in finished] == ["aborted"]


def test_events_reach_a_queue_on_another_thread_in_order_and_a_failing_subscriber_stops_nothing(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    events = PaymentEvents(fake_clock)
    got: list[dict] = []

    def read(sub: Subscription) -> None:
        while (event := sub.get(timeout=5)) is not None:
            got.append(as_dict(event))
            if event.kind == "finished":
                return

    def broken(event: PaymentEvent) -> None:
        raise RuntimeError("the browser went away")

    events.subscribe(broken)
    with events.listen() as sub:
        reader = threading.Thread(target=read, args=(sub,))
        reader.start()
        terminal.on_display = events.terminal_shows
        PaymentWorkflow(sessions, terminal, StatePrinter(), Desk(), fake_clock, "B-1", events=events).pay(
            "P-1"
        )
        reader.join(10)
    kinds = [g["kind"] for g in got]
    assert kinds[0] == "step" and kinds[-1] == "finished" and got[-1]["outcome"] == "paid"
    assert [g["step"] for g in got if g["kind"] == "step"] == [
        "check_devices", "open_attempt", "read_card", "own_card_check", "authorise", "record",
    ]  # fmt: skip
    assert [g["after"] for g in got if g["kind"] == "state"] == [
        "started", "card_read", "authorising", "result_persisted", "paid",
    ]  # fmt: skip
    assert all(isinstance(g["words"], str) and g["words"] for g in got)
    assert len(sim.journal.booked()) == 1


def test_an_attempt_moved_on_by_another_process_cannot_go_on_to_charge(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    """While the officer looks at the card, a second process finds the attempt unfinished and abandons it:
    the first may not authorise it any more (abandoned → authorising is not in the table)."""
    sim.settings.card = "mc_chip"
    flow = _flow(sessions, terminal, fake_clock, desk=Desk(on_attest=lambda: other.recovery.reconcile()))
    other = _flow(sessions, terminal, fake_clock)
    with pytest.raises(IllegalTransition, match="from abandoned to authorising"):
        flow.pay("P-1")
    assert "authorisation" not in sim.commands_seen and sim.journal.all() == []
