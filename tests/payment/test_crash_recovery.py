"""Crash tests: the ECR process is killed around the commit of the 04 0F; after a restart the attempt is
reconciled with the terminal, the right state is recorded and nobody is charged twice."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import SystemClock
from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.payment.recovery import reconcile
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from hardware.zvt.transport import SerialChannel
from simulators.zvt.journal import ChargeJournal
from simulators.zvt.lines import PtyLine
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


@pytest.mark.parametrize(
    ("kill_at", "attempt_state", "charged"),
    [
        ("before_persist", "reversed", False),  # result never committed: no ACK, the terminal auto-reverses
        (
            "after_persist",
            "reversed",
            False,
        ),  # committed but never acknowledged: auto-reversal, recorded as such
        ("after_ack", "paid", True),  # acknowledged: the payment stands and is recorded exactly once
    ],
)
def test_killed_ecr_is_reconciled_on_restart_without_second_charge(
    real_sim: SimulatedTerminal,
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    kill_at: str,
    attempt_state: str,
    charged: bool,
) -> None:
    protocol_factory(device_sessions, "P-1")
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("crash_driver.py")),
            device_db_url,
            real_sim.line.path,
            kill_at,
            "P-1",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(c.status == "pending" for c in real_sim.journal.all()):
        time.sleep(0.05)
    channel = SerialChannel(real_sim.line.path)
    try:
        assert reconcile(device_sessions, ZvtPaymentTerminal(channel, SystemClock()), SystemClock()) == []
        assert (
            reconcile(device_sessions, ZvtPaymentTerminal(channel, SystemClock()), SystemClock()) == []
        )  # idempotent
    finally:
        channel.close()
    with device_sessions() as s:
        attempt = s.scalars(select(PaymentAttempt)).one()
        payments = s.scalars(select(Payment)).all()
    assert attempt.state == attempt_state, attempt.reason
    assert len(payments) == (1 if charged else 0)
    booked = real_sim.journal.booked()
    assert len(booked) == (1 if charged else 0)
    if charged:
        assert payments[0].trace_no == str(booked[0].trace)
