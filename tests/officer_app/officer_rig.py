"""A patrol device's officer app as the browser sees it, on real simulated hardware.

``OfficerRig`` serves the device's own HTTP application (``edge.http.create_device_app``, the one
``patrol-edge run`` serves) with uvicorn on a free loopback port, on a migrated device database, with:

- the ZVT terminal simulator on a pseudo-terminal (real framing, link and commands; its journal is the
  terminal's record of charges), optionally paced like a 9600-baud line;
- the ESC/POS printer simulator on TCP (real bytes; paper out after N cuts, paper loaded again);
- a power-supply folder (battery 80 %) and a recorder status file kept fresh as the recorder keeps it (with a
  GPS fix), so the status bar reads what it reads on a device;
- a running clock that tests move forward (idle lock, PIN lockout) instead of waiting.

Officers: ``B-1`` (PIN 1234, Russian), ``B-2`` (PIN 5678, Kazakh), ``B-3`` (PIN 2468, English).
Screenshots go to ``$PATROLKIT_SCREENSHOTS`` (default ``<tmp>/patrolkit-screenshots``).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from core.clock import RunningClock
from core.manifest import format_utc
from core.signing import new_private_key
from edge.config import EdgeConfig
from edge.db.base import make_engine, make_sessionmaker, transaction
from edge.db.migrate import upgrade
from edge.db.protocols import Officer
from edge.http import create_device_app
from edge.identity import DeviceIdentity
from edge.officer_app.accounts import hash_pin
from edge.recorder.recorder import STATUS_FILE
from hardware.printer.profiles import profile_by_name
from simulators.power import PowerSimulator
from simulators.printer.server import TcpPrinterServer
from simulators.printer.store import ReceiptStore
from simulators.printer.virtual_printer import VirtualPrinter
from simulators.zvt.lines import PacedChannel, PtyLine
from simulators.zvt.scenarios import Scenario, TerminalSettings
from simulators.zvt.terminal import SimulatedTerminal

START = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)  # Monday 2 March 2026, 10:30 in Almaty
OFFICERS = {
    "B-1": ("1234", "ru", "Серікбаев Әділет"),
    "B-2": ("5678", "kk", "Нұрланов Асқар"),
    "B-3": ("2468", "en", "Ivanova Olga"),
}
DRIVER_NAME = "Жанболатов Арман"
DRIVER_IIN = "850101300124"


def screenshot_dir() -> Path:
    d = Path(os.environ.get("PATROLKIT_SCREENSHOTS") or Path(tempfile.gettempdir()) / "patrolkit-screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OfficerRig:
    root: Path
    clock: RunningClock
    sessions: sessionmaker[Session]
    terminal: SimulatedTerminal
    printer: VirtualPrinter
    store: ReceiptStore
    power: PowerSimulator
    config: EdgeConfig
    url: str
    app: Any
    _stop: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ hardware
    def reset_hardware(self) -> None:
        """Every test starts with an approving terminal (own card presented at once) and a full roll."""
        self.terminal.settings = TerminalSettings(timezone=self.config.device.timezone)
        self.terminal.settings.card = "visa_named"
        self.printer.load_paper()
        self.printer.configure(paper_out_after_cuts=None)

    def charges(self, amount_minor: int | None = None) -> list[dict[str, Any]]:
        """The terminal's own journal of booked charges (optionally of one amount)."""
        out = [c.__dict__ for c in self.terminal.journal.all() if c.status == "booked"]
        return [c for c in out if amount_minor is None or c["amount_minor"] == amount_minor]

    def printed(self, number: str) -> list[Any]:
        """The receipts the printer simulator printed for protocol ``number``."""
        return [r for r in self.store.receipts if any(number in line for line in r.text_lines())]

    # ------------------------------------------------------------------ the browser
    def sign_in(
        self, page: Any, badge: str = "B-1", pin: str | None = None, next_: str = "/stops/new"
    ) -> None:
        page.goto(f"{self.url}/signin?next={next_}")
        page.fill("#badge", badge)
        page.fill("#pin", pin if pin is not None else OFFICERS[badge][0])
        page.click("button[type=submit].primary")
        page.wait_for_load_state()

    def new_stop(
        self, page: Any, article: str = "592.1", iin: str = DRIVER_IIN, name: str = DRIVER_NAME,
        plate: str = "123ABC01", phone: str = "",
    ) -> str:  # fmt: skip
        """Draw up a protocol through the form; returns its number."""
        page.goto(f"{self.url}/stops/new")
        number = page.input_value("#number")
        page.fill("#driver_iin", iin)
        page.fill("#driver_name", name)
        page.fill("#vehicle_plate", plate)
        if phone:
            page.fill("#driver_phone", phone)
        page.click(f"button.article-button[value='{article}']")
        page.wait_for_url("**/stop?n=*")
        return str(number)

    def to_payment(self, page: Any, lang: str = "ru") -> None:
        """From the stop's page: the driver's screen in ``lang``, the driver agrees, Pay."""
        page.click("#to-driver")
        page.click(f".langs a[lang='{lang}']")
        page.click("#agree")
        page.click("#pay")
        page.wait_for_url("**/stop/pay?*")

    def phase(self, page: Any, phase: str, timeout: float = 20_000) -> None:
        page.wait_for_selector(f"#pay-panel[data-phase='{phase}']", timeout=timeout)

    def shot(self, page: Any, name: str) -> Path:
        path = screenshot_dir() / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def _keep_recorder_status(rig: OfficerRig) -> None:
    """Write the recorder's status file once a second, as the recording process does (with a GPS fix)."""
    directory = rig.config.recording_dir
    directory.mkdir(parents=True, exist_ok=True)
    while not rig._stop.is_set():
        now = rig.clock.now()
        status = {
            "state": "recording", "pid": os.getpid(), "updated_utc": format_utc(now), "segment_seq": 1,
            "hours_left": 31.5, "storage_low": False, "free_bytes": 40 * 10**9, "gap_cause": None,
            "gps_fix": {"lat": 51.1605, "lon": 71.4704, "fix_utc": format_utc(now - timedelta(seconds=2)),
                        "quality": 1, "satellites": 9, "read_utc": format_utc(now - timedelta(seconds=2))},
        }  # fmt: skip
        tmp = directory / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, directory / STATUS_FILE)
        rig._stop.wait(0.5)


def add_officers(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        for badge, (pin, lang, name) in OFFICERS.items():
            s.add(Officer(badge=badge, full_name=name, unit="ДПС УП г. Астана", pin_hash=hash_pin(pin),
                          language=lang, pin_failures=0))  # fmt: skip


@contextmanager
def running_rig(root: Path, paced_baud: int | None = None, **officer: Any) -> Iterator[OfficerRig]:
    clock = RunningClock(START)
    db_url = f"sqlite:///{root / 'device.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    add_officers(sessions)
    line = PtyLine(root / "zvt0")
    wrap = (lambda ch: PacedChannel(ch, paced_baud)) if paced_baud else None
    terminal = SimulatedTerminal(line, clock, TerminalSettings(), channel_wrapper=wrap).start()
    profile = profile_by_name("kz1048-80mm")
    store = ReceiptStore(profile, root / "printed")
    printer = VirtualPrinter(profile, on_receipt=store.add, clock=clock, strict=True)
    printer_server = TcpPrinterServer(printer, port=0).start()
    power = PowerSimulator(root / "power_supply")
    config = EdgeConfig.model_validate(
        {
            "device": {"id": "DEV-OA", "data_dir": str(root)},
            "terminal": {"url": line.path},
            "printer": {"url": printer_server.url},
            "power": {"sysfs": str(root / "power_supply")},
            "server": {"url": "https://verify.example.kz"},
            "officer": {"status_poll_s": 5, **officer},
        }
    )
    app = create_device_app(config, DeviceIdentity("DEV-OA", new_private_key()), sessions, None, clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, name="officer-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    rig = OfficerRig(
        root, clock, sessions, terminal, printer, store, power, config, f"http://127.0.0.1:{port}", app
    )
    rig.reset_hardware()
    status = threading.Thread(target=_keep_recorder_status, args=(rig,), daemon=True)
    status.start()
    try:
        yield rig
    finally:
        rig._stop.set()
        server.should_exit = True
        thread.join(10)
        terminal.stop()
        line.close()
        printer_server.stop()
        engine.dispose()


__all__ = ["DRIVER_IIN", "DRIVER_NAME", "OFFICERS", "OfficerRig", "Scenario", "running_rig", "screenshot_dir"]
