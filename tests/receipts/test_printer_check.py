"""The printer is asked before a payment starts: paper end, cover open or offline block it; near end or no status
reply warn. With the virtual printer offline, the payment workflow refuses before touching the card terminal."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from core.clock import FakeClock
from edge.db.payments import Payment
from edge.payment.ports import Readiness
from edge.receipts.readiness import DriverPrinterCheck
from hardware.printer.driver import EscposPrinter
from hardware.printer.profiles import profile_by_name
from simulators.printer.server import TcpPrinterServer
from simulators.printer.virtual_printer import VirtualPrinter


@pytest.fixture
def sim_and_check(fake_clock: FakeClock):  # type: ignore[no-untyped-def]
    profile = profile_by_name("kz1048-80mm")
    sim = VirtualPrinter(profile, clock=fake_clock)
    server = TcpPrinterServer(sim, port=0).start()
    driver = EscposPrinter(server.url, profile, fake_clock, read_timeout=0.2)
    yield sim, DriverPrinterCheck(driver)
    driver.close()
    server.stop()


@pytest.mark.parametrize(
    ("script", "state", "reason"),
    [
        ({}, Readiness.READY, ""),
        ({"roll_rows": 0}, Readiness.BLOCKED, "paper end"),
        ({"cover_open": True}, Readiness.BLOCKED, "cover open"),
        ({"offline": True}, Readiness.BLOCKED, "offline"),
        ({"roll_rows": 500}, Readiness.WARNING, "paper near end"),
        ({"no_status_reply": True}, Readiness.WARNING, "printer status unknown (no reply)"),
    ],
)
def test_printer_check_reports_what_the_printer_says(
    sim_and_check: Any, script: dict[str, Any], state: Readiness, reason: str
) -> None:
    sim, check = sim_and_check
    sim.configure(**script)
    result = check.check()
    assert (result.state, result.reason) == (state, reason)


def test_unreachable_printer_blocks(fake_clock: FakeClock) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    driver = EscposPrinter(
        f"tcp://127.0.0.1:{port}", profile_by_name("kz1048-80mm"), fake_clock, read_timeout=0.2
    )
    result = DriverPrinterCheck(driver).check()
    assert result.state is Readiness.BLOCKED and result.reason == "offline"


class _UntouchableTerminal:
    """A card terminal that fails the test if the workflow talks to it at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the terminal was used ({name}) although the printer is offline")


def test_offline_printer_means_no_payment_starts(
    sim_and_check: Any, device_sessions: Any, fake_clock: FakeClock, add_protocol: Any
) -> None:
    import edge.payment.workflow as workflow_mod

    sim, check = sim_and_check
    add_protocol(device_sessions, paid=False)
    sim.set_offline(True)
    workflow = workflow_mod.PaymentWorkflow(
        device_sessions, _UntouchableTerminal(), check, _UntouchableTerminal(), fake_clock, "KZ-7781"
    )

    with pytest.raises(workflow_mod.PrinterNotReady, match="offline"):
        workflow.pay("ERAP-2026-000123")

    with device_sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0
