"""Fixtures for payment workflow tests: a migrated device DB with protocols, the terminal simulator on a pty,
the ZVT adapter, a printer readiness check and an officer desk (small real implementations passed in)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.base import transaction
from edge.db.protocols import Officer, Protocol
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from hardware.zvt.transport import SerialChannel
from simulators.zvt.lines import PtyLine
from simulators.zvt.terminal import SimulatedTerminal


def add_protocol(
    sessions: sessionmaker[Session],
    number: str,
    article: str = "592.1",
    reduced: int = 1_083_000,
    driver: str = "ЖАНБОЛАТОВ АРМАН",
) -> None:
    with transaction(sessions) as s:
        if s.get(Officer, "B-1") is None:
            s.add(Officer(badge="B-1", full_name="Officer One", unit="U"))
        s.add(
            Protocol(
                number=number,
                jurisdiction="KZ",
                article=article,
                article_title="",
                offence_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
                offence_date=date(2026, 3, 2),
                place="",
                driver_name=driver,
                driver_iin="900101300001",
                vehicle_plate="123ABC01",
                officer_badge="B-1",
                device_id="DEV-1",
                currency="KZT",
                fine_units=5,
                unit_value_minor=432_500,
                unit_year=2026,
                full_minor=2 * reduced if reduced > 0 else 0,
                reduced_minor=reduced,
                discount_deadline=date(2099, 12, 31),
                legal_basis="",
                dataset_version="kz@1",
                status="open",
                created_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
            )
        )


@pytest.fixture
def protocol_factory() -> object:
    return add_protocol


@pytest.fixture
def sessions(device_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    add_protocol(device_sessions, "P-1")
    add_protocol(device_sessions, "P-WARN", article="594.1")
    add_protocol(device_sessions, "P-ZERO", reduced=0)
    add_protocol(device_sessions, "P-OTHER", driver="ПЕТРОВА АННА")
    return device_sessions


@pytest.fixture
def sim(tmp_path: Path, fake_clock: FakeClock) -> Iterator[SimulatedTerminal]:
    line = PtyLine(tmp_path / "zvt0")
    terminal = SimulatedTerminal(line, fake_clock).start()
    yield terminal
    terminal.stop()
    line.close()


@pytest.fixture
def displays() -> list[str]:
    return []


@pytest.fixture
def terminal(
    sim: SimulatedTerminal, fake_clock: FakeClock, displays: list[str]
) -> Iterator[ZvtPaymentTerminal]:
    channel = SerialChannel(sim.line.path)
    yield ZvtPaymentTerminal(channel, fake_clock, on_display=displays.append)
    channel.close()
