"""The officer app as ``patrol-edge run`` serves it, as its own process: a payment from the browser, then the
device process killed outright (SIGKILL) in the middle of the next payment and started again. The officer's
browser comes back to that payment and sees what recovery found on the terminal, then pays again; the
terminal's journal shows one charge per paid protocol."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from officer_rig import add_officers, free_port
from sqlalchemy import select

from core.clock import SystemClock
from edge.db.base import make_engine, make_sessionmaker, transaction
from edge.db.migrate import upgrade
from edge.db.payment_attempts import PaymentAttempt
from edge.db.protocols import Protocol
from hardware.printer.profiles import profile_by_name
from simulators.printer.server import TcpPrinterServer
from simulators.printer.store import ReceiptStore
from simulators.printer.virtual_printer import VirtualPrinter
from simulators.zvt.lines import PtyLine
from simulators.zvt.terminal import SimulatedTerminal

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
BIN = Path(sys.executable).parent


def _protocol(sessions: Any, number: str) -> None:
    """A protocol the driver has agreed to pay (its discount runs far ahead: this test runs on real time)."""
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        s.add(
            Protocol(
                number=number, jurisdiction="KZ", article="592.1", article_title="Превышение скорости на 10–20 км/ч",
                offence_at=now, offence_date=now.date(), place="Астана", driver_name="Жанболатов Арман",
                driver_iin="850101300124", vehicle_plate="123ABC01", officer_badge="B-1", device_id="DEV-PROC",
                currency="KZT", fine_units=5, unit_value_minor=432_500, unit_year=2026, full_minor=2_162_500,
                reduced_minor=1_081_250, discount_deadline=date(2099, 12, 31), legal_basis="КоАП РК ст. 810",
                dataset_version="fines-kz@1", status="open", created_at=now, driver_agreed_at=now,
                driver_agreed_language="ru",
            )
        )  # fmt: skip


@contextlib.contextmanager
def _hardware(root: Path) -> Iterator[tuple[SimulatedTerminal, TcpPrinterServer]]:
    line = PtyLine(root / "zvt0")
    terminal = SimulatedTerminal(line, SystemClock()).start()
    profile = profile_by_name("kz1048-80mm")
    printer = TcpPrinterServer(VirtualPrinter(profile, on_receipt=ReceiptStore(profile).add), port=0).start()
    try:
        yield terminal, printer
    finally:
        terminal.stop()
        line.close()
        printer.stop()


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "patrol-edge"), "--config", str(config), "run"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(log.read_text()[-3000:])


def test_device_killed_mid_payment_comes_back_to_what_recovery_found(tmp_path: Path, browser: Any) -> None:
    data = tmp_path / "device"
    data.mkdir()
    db_url = f"sqlite:///{data / 'device.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    add_officers(sessions)
    _protocol(sessions, "PROC-1")
    _protocol(sessions, "PROC-2")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "device.log"
    with _hardware(tmp_path) as (terminal, printer):
        config = tmp_path / "edge.toml"
        config.write_text(
            f'[device]\nid = "DEV-PROC"\ndata_dir = {json.dumps(str(data))}\n'
            f"[terminal]\nurl = {json.dumps(str(tmp_path / 'zvt0'))}\n"
            f'[printer]\nurl = "{printer.url}"\n'
            f"[http]\nport = {port}\n[recorder]\nenabled = false\n[upload]\nenabled = false\n[mqtt]\nenabled = false\n",
            encoding="utf-8",
        )
        proc = _start(config, log)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            _wait_healthy(url, proc, log)
            page.goto(f"{url}/signin")
            page.fill("#badge", "B-1")
            page.fill("#pin", "1234")
            page.click("button.primary")
            for number, kill in (("PROC-1", False), ("PROC-2", True)):
                page.goto(f"{url}/stop/driver?n={quote(number)}&lang=ru")
                terminal.settings.auto_pin = (
                    not kill
                )  # the second driver is typing his PIN when the device dies
                page.click("#pay")
                if not kill:
                    page.wait_for_selector("#pay-panel[data-phase='paid']")
                    continue
                page.locator("#pay-headline", has_text="PIN").wait_for()
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            with sessions() as s:
                dead = s.scalar(select(PaymentAttempt).where(PaymentAttempt.protocol_number == "PROC-2"))
                assert dead is not None and dead.state == "authorising"  # what the crash left

            proc = _start(config, log)
            _wait_healthy(url, proc, log)
            page.reload()  # the kiosk's page, with the session that outlived the process
            page.wait_for_selector("#pay-panel[data-phase='not_paid']")
            assert "Деньги не списаны" in page.inner_text("#pay-headline")
            with sessions() as s:
                settled = s.get(PaymentAttempt, dead.id)
                assert settled is not None and settled.state == "not_charged"
                assert "recorded earlier: nothing was booked after it" in settled.reason
            page.click("#try-again")
            terminal.settings.auto_pin = True
            page.click("#pay")
            page.wait_for_selector("#pay-panel[data-phase='paid']")
            assert [c.amount_minor for c in terminal.journal.booked()] == [1_081_250, 1_081_250]
            assert len({c.trace for c in terminal.journal.booked()}) == 2
        finally:
            context.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            engine.dispose()
