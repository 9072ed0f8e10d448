"""Crash tests: the ECR process is SIGKILLed around the commit of the 04 0F (after the result arrived but
before it was saved; after it was saved but before it was acknowledged; after the acknowledgement). A new
process then settles the attempt by evidence: with a terminal that has Repeat Receipt, by its last receipt;
with one that has not, the attempt stays in doubt (blocking only its protocol) until End-of-Day's totals
settle it. Nobody is charged twice, and the settlement names its evidence."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import SystemClock
from edge.db.payment_attempts import PaymentAttempt, PaymentEvidence, PaymentSettlement
from edge.db.payments import Payment
from edge.payment.attempts import AttemptJournal
from edge.payment.recovery import Recovery
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from edge.sync.outbox import OutboxContent, OutboxRecord
from hardware.zvt.transport import SerialChannel
from simulators.zvt.journal import ChargeJournal
from simulators.zvt.lines import PtyLine
from simulators.zvt.scenarios import Profile
from simulators.zvt.terminal import SimulatedTerminal

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture
def real_sim(tmp_path: Path) -> Iterator[SimulatedTerminal]:
    line = PtyLine(tmp_path / "zvt-crash")
    sim = SimulatedTerminal(line, SystemClock(), journal=ChargeJournal(tmp_path / "journal.json")).start()
    yield sim
    sim.stop()
    line.close()


def _recovery(sessions: sessionmaker[Session], channel: SerialChannel) -> Recovery:
    clock = SystemClock()
    terminal = ZvtPaymentTerminal(channel, clock)
    recovery = Recovery(sessions, terminal, clock, AttemptJournal(sessions, clock))
    terminal.on_stray_result = recovery.take_stray
    return recovery


def _synced(sessions: sessionmaker[Session], record_type: str) -> list[dict]:
    with sessions() as s:
        rows = s.execute(
            select(OutboxContent.body)
            .join(OutboxRecord, OutboxRecord.seq == OutboxContent.seq)
            .where(OutboxRecord.record_type == record_type)
            .order_by(OutboxRecord.seq)
        ).scalars()
        return [json.loads(b) for b in rows]


@pytest.mark.parametrize(
    "profile", [Profile.FULL, Profile.NO_REPEAT_RECEIPT], ids=["repeat-receipt", "no-repeat-receipt"]
)
@pytest.mark.parametrize(
    ("kill_at", "saved", "charged"),
    [
        ("before_persist", False, False),  # arrived, never saved, never answered: the terminal auto-reverses
        ("after_persist", True, False),  # saved but never acknowledged: auto-reversed all the same
        ("after_ack", True, True),  # acknowledged: the payment stands and is recorded exactly once
    ],
)
def test_killed_ecr_is_settled_by_evidence_without_second_charge(
    real_sim: SimulatedTerminal,
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    profile: Profile,
    kill_at: str,
    saved: bool,
    charged: bool,
) -> None:
    real_sim.settings.apply_profile(profile)
    protocol_factory(device_sessions, "P-1")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("crash_driver.py")), device_db_url, real_sim.line.path,
         kill_at, "P-1"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(c.status == "pending" for c in real_sim.journal.all()):
        time.sleep(0.05)
    with device_sessions() as s:
        assert (s.scalars(select(PaymentAttempt)).one().result_hex is not None) is saved
    channel = SerialChannel(real_sim.line.path)
    try:
        recovery = _recovery(device_sessions, channel)
        found = recovery.reconcile()
        if profile is Profile.FULL:
            assert found.in_doubt == [] and len(found.settled) == 1, found
            method = "repeat_receipt"
        else:
            # no last receipt to ask: in doubt, with the refusal kept as evidence, until End-of-Day
            assert len(found.in_doubt) == 1 and found.settled == []
            with device_sessions() as s:
                assert s.scalars(select(PaymentAttempt)).one().state == "in_doubt"
                assert "refused Repeat Receipt" in s.scalars(select(PaymentEvidence.summary)).one()
            eod = recovery.end_of_day()
            assert eod.in_doubt == [] and len(eod.settled) == 1, eod.evidence
            method = "end_of_day"
        assert recovery.reconcile().settled == []  # settled once; asking again changes nothing
    finally:
        channel.close()
    with device_sessions() as s:
        attempt = s.scalars(select(PaymentAttempt)).one()
        payments = s.scalars(select(Payment)).all()
        settlement = s.scalars(select(PaymentSettlement)).one()
    expected_state = "paid" if charged else ("reversed" if profile is Profile.FULL else "not_charged")
    assert attempt.state == expected_state, attempt.reason
    assert (settlement.method, settlement.outcome) == (method, "charged" if charged else "not_charged")
    assert len(payments) == (1 if charged else 0)
    booked = real_sim.journal.booked()
    assert len(booked) == (1 if charged else 0)
    if charged:
        assert payments[0].trace_no == str(booked[0].trace) and settlement.payment_id == payments[0].id
    records = _synced(device_sessions, "payment_settlement")
    assert [(r["method"], r["outcome"]) for r in records] == [(settlement.method, settlement.outcome)]
    assert _synced(device_sessions, "payment_attempt")[-1]["state"] == expected_state
