"""The roadside payment workflow against the terminal simulator over a pty, on a migrated device database."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.db.protocols import Protocol
from edge.payment import workflow as wf
from edge.payment.ports import CardRead, PrinterReadiness, Readiness
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
    displays: list[str] | None = None,
) -> PaymentWorkflow:
    return PaymentWorkflow(
        sessions,
        terminal,
        printer or StatePrinter(),
        desk or Desk(),
        fake_clock,
        "B-1",
        on_progress=(displays.append if displays is not None else None),
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
            select(OutboxRecord.record_type, OutboxContent.body).join(OutboxContent, OutboxContent.seq == OutboxRecord.seq).order_by(OutboxRecord.seq)
        ).all()
        return [(record_type, json.loads(body)) for record_type, body in rows]


def test_approved_payment_is_stored_queued_and_charged_once(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
    displays: list[str],
) -> None:
    paid = _flow(sessions, terminal, fake_clock, displays=displays).pay("P-1")
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
    assert [t for t, _ in queued] == ["own_card_check", "bookmark", "payment", "bookmark", "protocol"]
    assert queued[-1][1]["status"] == "paid" and queued[-1][1]["number"] == "P-1"
    # the footage of the own-card check and of the payment is bookmarked under the protocol number
    assert [(b["label"], b["protocol_number"]) for t, b in queued if t == "bookmark"] == [
        ("own_card_check", "P-1"),
        ("payment", "P-1"),
    ]
    assert len(sim.journal.booked()) == 1 and sim.journal.booked()[0].amount_minor == 1_083_000
    assert "insert card" in displays and "approved" in displays


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
    assert [(t, b.get("result", b.get("label"))) for t, b in _outbox(sessions)] == [
        ("own_card_check", "MISMATCH"),
        ("bookmark", "own_card_check"),
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


def test_declined_payment_is_not_recorded(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    sim.settings.scenario = Scenario.DECLINED
    with pytest.raises(wf.PaymentDeclined, match="declined"):
        _flow(sessions, terminal, fake_clock).pay("P-1")
    with sessions() as s:
        assert s.scalars(select(PaymentAttempt)).one().state == "declined"
        assert s.get(Protocol, "P-1").status == "open"  # type: ignore[union-attr]
    assert _counts(sessions)[0] == 0


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


def test_unplugged_line_mid_payment_is_reconciled_before_the_next_payment(
    sessions: sessionmaker[Session],
    terminal: ZvtPaymentTerminal,
    sim: SimulatedTerminal,
    fake_clock: FakeClock,
) -> None:
    terminal.on_display = lambda text: sim.line.vanish() if text == "waiting for host" else None
    with pytest.raises(wf.PaymentInDoubt):
        _flow(sessions, terminal, fake_clock).pay("P-1")
    with sessions() as s:
        assert s.scalars(select(PaymentAttempt)).one().state == "in_doubt"
    sim.line.restore()
    terminal.on_display = lambda text: None
    paid = _flow(sessions, terminal, fake_clock).pay("P-1")
    with sessions() as s:
        states = sorted(a.state for a in s.scalars(select(PaymentAttempt)))
    assert "paid" in states and len(states) == 2
    assert set(states) - {"paid"} <= {"not_charged", "reversed"}  # the lost attempt was never booked
    assert len(sim.journal.booked()) == 1 and paid.amount.minor == 1_083_000
