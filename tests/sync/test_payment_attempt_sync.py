"""Every payment attempt (declined and aborted ones included) and every settlement of an attempt in doubt
reach the server: made by the real payment workflow against the terminal simulator, sealed from the device's
outbox and ingested. The server keeps the latest state of each attempt (an older revision never wins, another
device cannot overwrite it) and refuses to change a settlement."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import T0, SyncRig

from core.clock import FakeClock
from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message
from core.sync.records import RecordRejected, parse_body
from edge.db.base import transaction
from edge.db.protocols import Officer, Protocol
from edge.payment import workflow as wf
from edge.payment.events import PaymentEvents
from edge.payment.ports import CardRead, PrinterReadiness, PromptUnanswered, Readiness
from edge.payment.settlement import decide
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from edge.sync.outbox import OutboxContent, OutboxRecord, seal_pending
from hardware.zvt.transport import SerialChannel
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy
from server.ingest.business import write_business
from server.ingest.pipeline import Incoming, ingest_batch
from server.ingest.record_types import record_type
from server.ingest.registry import DeviceRegistry
from simulators.zvt.faults import LineFault
from simulators.zvt.lines import PtyLine
from simulators.zvt.scenarios import Profile, Scenario
from simulators.zvt.terminal import SimulatedTerminal

pytestmark = pytest.mark.timeout(60)


class Ready:
    def check(self) -> PrinterReadiness:
        return PrinterReadiness(Readiness.READY)


class Desk:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer

    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        return True

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        if self.answer is None:
            raise PromptUnanswered("end of input")
        return self.answer


def _protocol(sessions: sessionmaker[Session], number: str) -> None:
    with transaction(sessions) as s:
        if s.get(Officer, "B-1") is None:
            s.add(Officer(badge="B-1", full_name="Officer One", unit="U"))
        s.add(
            Protocol(number=number, jurisdiction="KZ", article="592.1", article_title="", offence_at=T0,
                     offence_date=date(2026, 3, 2), place="", driver_name="ЖАНБОЛАТОВ АРМАН",
                     driver_iin="900101300001", vehicle_plate="123ABC01", officer_badge="B-1", device_id="DEV-1",
                     currency="KZT", fine_units=5, unit_value_minor=432_500, unit_year=2026, full_minor=2_166_000,
                     reduced_minor=1_083_000, discount_deadline=date(2099, 12, 31), legal_basis="",
                     dataset_version="kz@1", status="open", created_at=T0)
        )  # fmt: skip


@pytest.fixture
def device(rig: SyncRig, tmp_path: Path) -> Iterator[tuple[SimulatedTerminal, ZvtPaymentTerminal, FakeClock]]:
    clock = FakeClock()
    line = PtyLine(tmp_path / "zvt-s")
    sim = SimulatedTerminal(line, clock).start()
    channel = SerialChannel(line.path)
    for number in ("S-DECL", "S-ABORT", "S-DOUBT"):
        _protocol(rig.device, number)
    yield sim, ZvtPaymentTerminal(channel, clock), clock
    channel.close()
    sim.stop()
    line.close()


def _pay(rig: SyncRig, terminal: ZvtPaymentTerminal, clock: FakeClock, number: str, desk: Desk) -> None:
    flow = wf.PaymentWorkflow(rig.device, terminal, Ready(), desk, clock, "B-1", events=PaymentEvents(clock))
    with pytest.raises(wf.PaymentError):
        flow.pay(number)


def _sealed(rig: SyncRig) -> list[tuple[int, str, bytes]]:
    with rig.device() as session, session.begin():
        seal_pending(session, rig.dev.device_id, rig.signer)
    with rig.device() as session:
        return [
            (seq, stream, payload or b"")
            for seq, stream, payload in session.execute(
                select(OutboxRecord.seq, OutboxRecord.record_type, OutboxContent.payload)
                .join(OutboxContent, OutboxContent.seq == OutboxRecord.seq)
                .order_by(OutboxRecord.seq)
            )
        ]


def _messages(rig: SyncRig, rows: list[tuple[int, str, bytes]]) -> list[Incoming]:
    streams: dict[str, list[bytes]] = {}
    for _seq, stream, payload in rows:
        streams.setdefault(stream, []).append(payload)
    return [
        Incoming(up_topic(rig.dev.device_id, stream), encode_batch_message(rig.signer, payloads))
        for stream, payloads in streams.items()
    ]


def _ingest(rig: SyncRig, messages: list[Incoming]) -> Any:
    with rig.server() as session, session.begin():
        return ingest_batch(session, messages, DeviceRegistry(rig.server), T0)


def test_declined_aborted_and_settled_attempts_reach_the_server_with_their_result_codes_and_evidence(
    rig: SyncRig, device: tuple[SimulatedTerminal, ZvtPaymentTerminal, FakeClock]
) -> None:
    sim, terminal, clock = device
    sim.settings.scenario = Scenario.DECLINED
    _pay(rig, terminal, clock, "S-DECL", Desk(True))
    sim.settings.scenario = Scenario.APPROVED
    sim.settings.card = "mc_chip"
    _pay(rig, terminal, clock, "S-ABORT", Desk(None))
    sim.settings.card = "visa_named"
    sim.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    sim.faults.add(LineFault("unplug", apdu_prefix=b"\x04\x0f", skip=1))  # the result is lost on the line
    _pay(rig, terminal, clock, "S-DOUBT", Desk(True))
    sim.line.restore()
    flow = wf.PaymentWorkflow(rig.device, terminal, Ready(), Desk(True), clock, "B-1")
    (doubt,) = flow.journal.result_unknown("S-DOUBT")
    decide(
        rig.device,
        flow.journal,
        clock,
        doubt.id,
        charged=False,
        reason="bank: no debit",
        decided_by="SUP-anna",
    )

    rows = _sealed(rig)
    outcome = _ingest(rig, _messages(rig, rows))
    assert outcome.dead_letters == 0 and outcome.conflicts == 0
    with rig.server() as session:
        attempts = {a.protocol_number: a for a in session.scalars(select(PaymentAttemptCopy))}
        settlement = session.scalars(select(PaymentSettlementCopy)).one()
    assert {n: a.state for n, a in attempts.items()} == {
        "S-DECL": "declined",
        "S-ABORT": "aborted",
        "S-DOUBT": "not_charged",
    }
    declined = attempts["S-DECL"]
    assert (declined.result_code, declined.result_text) == (
        sim.settings.decline_code,
        "declined by the card issuer",
    )
    assert (
        "06 B0" in attempts["S-ABORT"].reason and attempts["S-DOUBT"].revision == 5
    )  # started, card read, authorising, in doubt, not charged
    assert (settlement.method, settlement.outcome, settlement.decided_by, settlement.reason) == (
        "decision", "not_charged", "SUP-anna", "bank: no debit",
    )  # fmt: skip
    assert "Repeat Receipt could not be asked, the terminal is unreachable" in settlement.evidence
    assert settlement.attempt_id == doubt.id
    assert all(a.device_id == rig.dev.device_id for a in attempts.values())


def test_an_older_state_of_an_attempt_never_overwrites_a_newer_one(
    rig: SyncRig, device: tuple[SimulatedTerminal, ZvtPaymentTerminal, FakeClock]
) -> None:
    sim, terminal, clock = device
    sim.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    sim.faults.add(LineFault("unplug", apdu_prefix=b"\x04\x0f", skip=1))  # the result is lost on the line
    _pay(rig, terminal, clock, "S-DOUBT", Desk(True))
    sim.line.restore()
    flow = wf.PaymentWorkflow(rig.device, terminal, Ready(), Desk(True), clock, "B-1")
    (doubt,) = flow.journal.result_unknown("S-DOUBT")
    decide(rig.device, flow.journal, clock, doubt.id, charged=True, reason="slip", decided_by="B-1")
    rows = [r for r in _sealed(rig) if r[1] == "payment_attempt"]
    assert len(rows) == 2  # in doubt, then paid
    _ingest(rig, _messages(rig, rows[1:]))  # the newer state arrives first (a resend after a gap)
    _ingest(rig, _messages(rig, rows[:1]))
    with rig.server() as session:
        copy = session.scalars(select(PaymentAttemptCopy)).one()
    assert copy.state == "paid" and copy.payment_id is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": "paid"}, "payment_id"),
        ({"updated_at": "2020-01-01T00:00:00Z"}, "before started_at"),
        ({"state": "teleported"}, "state"),
        ({"result_code": 300}, "result_code"),
    ],
)
def test_malformed_attempt_records_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    body = {
        "attempt_id": str(uuid.uuid4()), "protocol_number": "P", "state": "declined", "revision": 3,
        "amount_minor": 100, "currency": "KZT", "officer_badge": "B", "started_at": "2026-03-02T09:00:00Z",
        "updated_at": "2026-03-02T09:01:00Z", "result_code": 5,
    }  # fmt: skip
    parse_body("payment_attempt", 1, body)
    with pytest.raises(RecordRejected, match=message):
        parse_body("payment_attempt", 1, {**body, **change})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "decision", "decided_by": None}, "decided_by"),
        ({"method": "decision", "reason": "  "}, "reason"),
        ({"outcome": "charged"}, "payment_id"),
        ({"evidence_hex": "zz"}, "evidence_hex"),
        ({"evidence": ""}, "evidence"),
    ],
)
def test_malformed_settlement_records_are_refused_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    body = {
        "settlement_id": "s1", "attempt_id": "a1", "protocol_number": "P", "outcome": "not_charged",
        "method": "decision", "evidence": "RR refused", "decided_by": "B-1", "reason": "no debit",
        "amount_minor": 100, "currency": "KZT", "settled_at": "2026-03-02T09:00:00Z",
    }  # fmt: skip
    parse_body("payment_settlement", 1, body)
    with pytest.raises(RecordRejected, match=message):
        parse_body("payment_settlement", 1, {**body, **change})


class _Head:
    def __init__(self, stream: str) -> None:
        self.id, self.stream = str(uuid.uuid4()), stream


class _Rec:
    def __init__(self, device_id: str, stream: str, body: dict[str, Any]) -> None:
        self.device_id, self.head, self.body = device_id, _Head(stream), parse_body(stream, 1, body)
        self.kind = record_type(stream, 1)


def store_payment_records(session: Session, now: datetime, records: list[_Rec]) -> None:
    """The business rows of ``records`` as the ingest writes them."""
    write_business(session, now, records)  # type: ignore[arg-type]


def test_another_device_cannot_overwrite_an_attempt_and_a_settlement_cannot_be_changed(
    server_sessions: sessionmaker[Session],
) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    attempt = {
        "attempt_id": "a1", "protocol_number": "P", "state": "in_doubt", "revision": 2, "amount_minor": 100,
        "currency": "KZT", "officer_badge": "B", "started_at": "2026-03-02T09:00:00Z",
        "updated_at": "2026-03-02T09:01:00Z",
    }  # fmt: skip
    settlement = {
        "settlement_id": "s1", "attempt_id": "a1", "protocol_number": "P", "outcome": "not_charged",
        "method": "end_of_day", "evidence": "totals agree", "amount_minor": 100, "currency": "KZT",
        "settled_at": "2026-03-02T09:05:00Z",
    }  # fmt: skip
    with server_sessions() as session, session.begin():
        store_payment_records(session, now, [_Rec("DEV-A", "payment_attempt", attempt)])
        store_payment_records(session, now, [_Rec("DEV-A", "payment_settlement", settlement)])
    with server_sessions() as session, session.begin():
        hostile = {**attempt, "state": "not_charged", "revision": 9}
        store_payment_records(session, now, [_Rec("DEV-EVIL", "payment_attempt", hostile)])
        store_payment_records(
            session, now, [_Rec("DEV-EVIL", "payment_settlement", {**settlement, "outcome": "not_charged",
                                                                       "evidence": "forged"})]
        )  # fmt: skip
    with server_sessions() as session:
        copy = session.scalars(select(PaymentAttemptCopy)).one()
        kept = session.scalars(select(PaymentSettlementCopy)).one()
    assert (copy.device_id, copy.state, copy.revision) == ("DEV-A", "in_doubt", 2)
    assert (kept.device_id, kept.evidence) == ("DEV-A", "totals agree")
    for sql in (
        "UPDATE sync_payment_settlement SET outcome = 'charged'",
        "DELETE FROM sync_payment_settlement",
    ):
        with pytest.raises(DatabaseError, match="append-only"), server_sessions() as session, session.begin():
            session.execute(text(sql))
    with server_sessions() as session:
        assert session.scalars(select(PaymentSettlementCopy.outcome)).one() == "not_charged"


def test_the_times_of_an_attempts_steps_reach_the_server(
    rig: SyncRig, device: tuple[SimulatedTerminal, ZvtPaymentTerminal, FakeClock]
) -> None:
    """payment_attempt v2: when the card was read and when the authorisation (PIN entry) began, so the
    supervisor's timeline puts them on the footage's clock."""
    sim, terminal, clock = device
    sim.settings.scenario = Scenario.DECLINED
    _pay(rig, terminal, clock, "S-DECL", Desk(True))
    sim.settings.scenario = Scenario.APPROVED
    sim.settings.card = "mc_chip"
    _pay(rig, terminal, clock, "S-ABORT", Desk(None))
    rows = _sealed(rig)
    assert {json.loads(p)["sv"] for _, s, p in rows if s == "payment_attempt"} == {2}
    _ingest(rig, _messages(rig, rows))
    with rig.server() as session:
        attempts = {a.protocol_number: a for a in session.scalars(select(PaymentAttemptCopy))}
    declined, aborted = attempts["S-DECL"], attempts["S-ABORT"]
    assert declined.card_read_at is not None and declined.authorising_at is not None
    assert declined.started_at <= declined.card_read_at <= declined.authorising_at <= declined.updated_at
    assert aborted.card_read_at is not None and aborted.authorising_at is None, "aborted at the own-card question"
