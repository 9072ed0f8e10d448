"""Attempts whose result is unknown, in process against the terminal simulator over a pty: the result lost
on the line before it reached the device, with and without Repeat Receipt, and sent again unsolicited by a
terminal that keeps it; an attempt in doubt blocks only its own protocol; End-of-Day and a person's decision
settle it; settling twice, settling a paid protocol or an attempt not in doubt is refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.payment_attempts import PaymentAttempt, PaymentEvidence, PaymentSettlement
from edge.db.payments import Payment
from edge.db.protocols import Protocol
from edge.payment import workflow as wf
from edge.payment.events import PaymentEvents
from edge.payment.ports import CardRead, PrinterReadiness, Readiness
from edge.payment.settlement import SettlementRefused, decide
from edge.payment.workflow import PaymentWorkflow
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from edge.sync.outbox import OutboxContent, OutboxRecord
from hardware.zvt.transport import SerialChannel
from simulators.zvt.faults import LineFault
from simulators.zvt.lines import PtyLine
from simulators.zvt.scenarios import Profile
from simulators.zvt.terminal import SimulatedTerminal

pytestmark = pytest.mark.timeout(60)
AMOUNT = 1_083_000


class Ready:
    def check(self) -> PrinterReadiness:
        return PrinterReadiness(Readiness.READY)


class Yes:
    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        return True

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        return True


def _pull_cable_at_the_result(sim: SimulatedTerminal) -> None:
    """The terminal's next payment result (its second 04 0F: the first is the Read Card's) never reaches the
    device: the cable is pulled as it is sent."""
    sim.faults.add(LineFault("unplug", apdu_prefix=b"\x04\x0f", skip=1))


@pytest.fixture
def rig(tmp_path: Path, fake_clock: FakeClock) -> Iterator[tuple[SimulatedTerminal, ZvtPaymentTerminal]]:
    line = PtyLine(tmp_path / "zvt-r")
    sim = SimulatedTerminal(line, fake_clock).start()
    channel = SerialChannel(line.path)
    yield sim, ZvtPaymentTerminal(channel, fake_clock)
    channel.close()
    sim.stop()
    line.close()


@pytest.fixture
def sessions(
    device_sessions: sessionmaker[Session], protocol_factory: Callable[..., None]
) -> sessionmaker[Session]:
    for number in ("P-1", "P-2", "P-3"):
        protocol_factory(device_sessions, number)
    return device_sessions


def _flow(sessions: sessionmaker[Session], terminal: ZvtPaymentTerminal, clock: FakeClock) -> PaymentWorkflow:
    return PaymentWorkflow(sessions, terminal, Ready(), Yes(), clock, "B-1", events=PaymentEvents(clock))


def _lose_result(rig: tuple[SimulatedTerminal, ZvtPaymentTerminal], sessions: Any, clock: FakeClock) -> str:
    """Pay P-1 while the cable is pulled as the terminal sends its result; returns the attempt, in doubt."""
    sim, terminal = rig
    _pull_cable_at_the_result(sim)
    with pytest.raises(wf.PaymentInDoubt) as err:
        _flow(sessions, terminal, clock).pay("P-1")
    sim.line.restore()
    attempt_id = err.value.attempt_ids[0]
    text = str(err.value)
    assert "P-1" in text and attempt_id in text and "patrol-edge payment end-of-day" in text
    assert "patrol-edge payment settle" in text and "other protocols can be paid" in text
    return attempt_id


def _state(sessions: sessionmaker[Session], attempt_id: str) -> str:
    with sessions() as s:
        row = s.get(PaymentAttempt, attempt_id)
        assert row is not None
        return row.state


def _settlement(sessions: sessionmaker[Session], attempt_id: str) -> PaymentSettlement:
    with sessions() as s:
        return s.scalars(select(PaymentSettlement).where(PaymentSettlement.attempt_id == attempt_id)).one()


def _outbox(sessions: sessionmaker[Session], record_type: str) -> list[dict]:
    with sessions() as s:
        q = (
            select(OutboxContent.body)
            .join(OutboxRecord, OutboxRecord.seq == OutboxContent.seq)
            .where(OutboxRecord.record_type == record_type)
            .order_by(OutboxRecord.seq)
        )
        return [json.loads(b) for b in s.scalars(q)]


def _counts(sessions: sessionmaker[Session]) -> tuple[int, ...]:
    with sessions() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) or 0
            for m in (Payment, PaymentSettlement, PaymentAttempt, OutboxRecord)
        )


def test_result_lost_before_it_arrived_is_settled_by_repeat_receipt_at_the_next_payment(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    sim, terminal = rig
    lost = _lose_result(rig, sessions, fake_clock)
    assert [c.status for c in sim.journal.all()] == ["auto_reversed"]
    paid = _flow(sessions, terminal, fake_clock).pay("P-2")  # asks the last receipt first
    assert _state(sessions, lost) == "reversed"
    settled = _settlement(sessions, lost)
    assert (settled.method, settled.outcome) == ("repeat_receipt", "not_charged")
    assert "reversed trace" in settled.evidence and settled.evidence_hex.startswith("040f")
    again = _flow(sessions, terminal, fake_clock).pay("P-1")  # not blocked any more
    assert {paid.protocol_number, again.protocol_number} == {"P-1", "P-2"}
    assert [c.status for c in sim.journal.all()] == ["auto_reversed", "booked", "booked"]


def test_without_repeat_receipt_an_attempt_in_doubt_blocks_only_its_protocol_until_end_of_day(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    sim, terminal = rig
    sim.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    lost = _lose_result(rig, sessions, fake_clock)
    flow = _flow(sessions, terminal, fake_clock)
    paid = flow.pay("P-2")  # another protocol: paid
    assert paid.protocol_number == "P-2"
    before = _counts(sessions)
    with pytest.raises(wf.PaymentInDoubt, match="P-1 is in doubt") as err:
        flow.pay("P-1")  # its own protocol: refused, with what to do next
    assert err.value.attempt_ids == [lost] and "refused Repeat Receipt" in str(err.value)
    assert _counts(sessions)[:3] == before[:3]
    with sessions() as s:
        assert s.scalars(select(PaymentEvidence.kind).where(PaymentEvidence.attempt_id == lost)).all()
    found = flow.recovery.end_of_day()
    assert found.in_doubt == [] and [s.attempt_id for s in found.settled] == [lost]
    settled = _settlement(sessions, lost)
    assert (settled.method, settled.outcome) == ("end_of_day", "not_charged")
    assert f"booked {AMOUNT} minor units in 1 transaction" in settled.evidence
    assert _state(sessions, lost) == "not_charged"
    flow.pay("P-1")
    assert len(sim.journal.booked()) == 2


def test_end_of_day_finds_an_attempt_in_doubt_charged_and_records_it_once(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    """The terminal booked it (its answer came after the line was back), RR unsupported: End-of-Day's total
    holds one more transaction than the device recorded, exactly the attempt in doubt."""
    sim, terminal = rig
    sim.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    lost = _lose_result(rig, sessions, fake_clock)
    charge = sim.journal.all()[0]
    sim.journal.set_status(charge, "booked")  # as a terminal that books without the ECR's answer does
    flow = _flow(sessions, terminal, fake_clock)
    flow.pay("P-2")
    found = flow.recovery.end_of_day()
    assert [s.attempt_id for s in found.settled] == [lost] and found.settled[0].charged
    with sessions() as s:
        assert s.get(Protocol, "P-1").status == "paid"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(Payment)) == 2
    assert _settlement(sessions, lost).method == "end_of_day"
    # `pay` now says recovery found it paid, and by what
    again = flow.pay("P-1")
    assert again.found_by == "end_of_day" and again.payment_id == _settlement(sessions, lost).payment_id


def test_end_of_day_that_cannot_tell_two_attempts_apart_settles_nothing(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    sim, terminal = rig
    sim.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    first = _lose_result(rig, sessions, fake_clock)
    sim.journal.set_status(sim.journal.all()[0], "booked")
    _pull_cable_at_the_result(sim)
    with pytest.raises(wf.PaymentInDoubt):
        _flow(sessions, terminal, fake_clock).pay("P-2")
    sim.line.restore()
    found = _flow(sessions, terminal, fake_clock).recovery.end_of_day()
    assert found.settled == [] and len(found.in_doubt) == 2 and first in found.in_doubt
    assert "2 way(s) to make the totals agree, nothing can be concluded" in found.evidence


def test_a_terminal_that_keeps_the_result_sends_it_again_and_it_is_saved_before_it_is_acknowledged(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    sim, terminal = rig
    sim.settings.apply_profile(Profile.STRAY_RESULTS)
    lost = _lose_result(rig, sessions, fake_clock)
    assert sim.state()["held_result"] is not None
    flow = _flow(sessions, terminal, fake_clock)
    flow.pay("P-2")  # its status enquiry meets the kept result first: saved, settles P-1, then acknowledged
    assert sim.stray_answers == ["800000"]
    settled = _settlement(sessions, lost)
    assert (settled.method, settled.outcome) == ("terminal_result", "charged")
    booked = sim.journal.booked()
    assert len(booked) == 2
    with sessions() as s:
        p1 = s.scalars(select(Payment).where(Payment.protocol_number == "P-1")).one()
        assert p1.trace_no == str(booked[0].trace) and p1.auth_code
    found = flow.pay("P-1")
    assert found.found_by == "terminal_result" and found.payment_id == p1.id


def test_a_stray_result_that_belongs_to_no_attempt_is_kept_as_evidence_and_refused(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    sim, terminal = rig
    sim.settings.apply_profile(Profile.STRAY_RESULTS)
    lost = _lose_result(rig, sessions, fake_clock)
    decide(sessions, _flow(sessions, terminal, fake_clock).journal, fake_clock, lost, charged=False,
           reason="driver shows no debit in the bank app", decided_by="B-1")  # fmt: skip
    _flow(sessions, terminal, fake_clock).pay(
        "P-2"
    )  # the kept result no longer belongs to an attempt in doubt
    assert sim.stray_answers == ["846600"]
    assert [c.status for c in sim.journal.all()] == ["reversed_by_ecr", "booked"]
    with sessions() as s:
        evidence = s.scalars(select(PaymentEvidence).where(PaymentEvidence.kind == "stray_result")).one()
    assert (
        evidence.answer == "refused" and evidence.raw_hex.startswith("040f") and evidence.attempt_id is None
    )


# ------------------------------------------------------------------ the last resort: a decision
@pytest.fixture
def in_doubt(rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock) -> str:
    rig[0].settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    lost = _lose_result(rig, sessions, fake_clock)
    with pytest.raises(wf.PaymentInDoubt):  # asks the terminal once more: Repeat Receipt refused
        _flow(sessions, rig[1], fake_clock).pay("P-1")
    return lost


@pytest.mark.parametrize("charged", [True, False], ids=["charged", "not-charged"])
def test_a_decision_settles_an_attempt_in_doubt_and_is_synced_with_its_evidence(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock, in_doubt: str, charged: bool
) -> None:
    flow = _flow(sessions, rig[1], fake_clock)
    settled = decide(sessions, flow.journal, fake_clock, in_doubt[:8], charged=charged,
                     reason="bank statement of the driver", decided_by="SUP-anna")  # fmt: skip
    assert settled.attempt_id == in_doubt and settled.charged is charged
    assert _state(sessions, in_doubt) == ("paid" if charged else "not_charged")
    (record,) = _outbox(sessions, "payment_settlement")
    assert (record["method"], record["outcome"], record["decided_by"], record["reason"]) == (
        "decision", "charged" if charged else "not_charged", "SUP-anna", "bank statement of the driver",
    )  # fmt: skip
    assert "refused Repeat Receipt" in record["evidence"]
    assert _outbox(sessions, "payment_attempt")[-1]["state"] == _state(sessions, in_doubt)
    if charged:
        found = flow.pay("P-1")
        assert found.found_by == "decision" and found.masked_pan.endswith("1014")
    else:
        assert flow.pay("P-1").found_by is None  # payable again, and paid now


def test_settling_twice_a_paid_protocol_or_an_attempt_not_in_doubt_is_refused_and_changes_nothing(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock, in_doubt: str
) -> None:
    flow = _flow(sessions, rig[1], fake_clock)
    paid_other = flow.pay("P-2")
    with sessions() as s:
        other_attempt = s.scalars(
            select(PaymentAttempt.id).where(PaymentAttempt.payment_id == paid_other.payment_id)
        ).one()
    for ref, message in (
        (other_attempt, "not in doubt"),
        ("nonexistent", "no payment attempt"),
    ):
        before = _counts(sessions)
        with pytest.raises(SettlementRefused, match=message):
            decide(sessions, flow.journal, fake_clock, ref, charged=True, reason="x", decided_by="B-1")
        assert _counts(sessions) == before
    with pytest.raises(SettlementRefused, match="needs a reason"):
        decide(sessions, flow.journal, fake_clock, in_doubt, charged=True, reason="  ", decided_by="B-1")
    decide(sessions, flow.journal, fake_clock, in_doubt, charged=False, reason="no debit", decided_by="B-1")
    before = _counts(sessions)
    with pytest.raises(SettlementRefused, match=r"already settled .* as not charged"):
        decide(sessions, flow.journal, fake_clock, in_doubt, charged=True, reason="again", decided_by="B-2")
    assert _counts(sessions) == before


def test_an_attempt_of_a_protocol_paid_meanwhile_cannot_be_settled(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock, in_doubt: str
) -> None:
    from edge.db.base import transaction

    flow = _flow(sessions, rig[1], fake_clock)
    with transaction(
        sessions
    ) as s:  # an old device database: P-1 paid by another attempt while this one hung
        s.add(Payment(id="pay-old", protocol_number="P-1", amount_minor=AMOUNT, currency="KZT", full_amount_minor=2 * AMOUNT,
                      name_check="MATCH", officer_badge="B-1", approved_at=fake_clock.now()))  # fmt: skip
    before = _counts(sessions)
    with pytest.raises(SettlementRefused, match=r"protocol P-1 is already paid .* charged twice"):
        decide(sessions, flow.journal, fake_clock, in_doubt, charged=False, reason="x", decided_by="B-1")
    assert _counts(sessions) == before


def test_the_result_of_a_recorded_payment_sent_again_is_acknowledged_not_reversed(
    rig: Any, sessions: sessionmaker[Session], fake_clock: FakeClock
) -> None:
    """Our 80 00 00 was lost and the terminal offers the result again when no command expects it: it was
    saved already, so it is acknowledged again (refusing it would reverse a recorded payment)."""
    from edge.payment.zvt_terminal import result_from_hex

    flow = _flow(sessions, rig[1], fake_clock)
    paid = flow.pay("P-1")
    with sessions() as s:
        attempt = s.scalars(select(PaymentAttempt).where(PaymentAttempt.payment_id == paid.payment_id)).one()
    before = _counts(sessions)
    assert flow.recovery.take_stray(result_from_hex(attempt.result_hex or "")) is True
    assert _counts(sessions) == before and _state(sessions, attempt.id) == "paid"
    with sessions() as s:
        kept = s.scalars(select(PaymentEvidence)).one()
    assert kept.answer == "accepted" and "recorded already" in kept.summary
