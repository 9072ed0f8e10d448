"""A real server process and a real browser, for tests that use the system as the outside world does.

Fixtures (made available to every test by ``tests/conftest.py``):

- ``live_server`` (one per test module): ``patrol-server run`` as its own process on a free loopback port,
  on a fresh migrated database (PostgreSQL when ``PATROLKIT_TEST_DB_URL`` is set, else SQLite), with no
  broker or ingest, and one supervisor added through ``patrol-server supervisor add``. Talk to it over HTTP
  at ``live_server.url``; ``live_server.cli(...)`` runs ``patrol-server`` on the same configuration and
  ``live_server.sessions`` reads or seeds its database.
- ``browser`` (one per test module): Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python.
  Per module, not per session: Playwright's sync API keeps an event loop running in the main thread while it is
  open, and a later test module that calls ``asyncio.run`` would fail.
  Playwright's own browser downloads are never used. Without Chromium or Playwright every test that asks
  for it is skipped with one line naming the package to install; with ``PATROLKIT_REQUIRE_BROWSER=1`` (CI)
  that skip is a failure.
- ``page``: a fresh browser context (no cookies) and page for one test.

``seed_stop(server, directory)`` gives a server a protocol whose footage is one real H.264 fMP4 segment,
recorded by the device's recorder code and uploaded over signed HTTP by a device that
``patrol-server device add`` provisioned.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from simulators.demo import free_port

from .databases import fresh_server_db

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_PACKAGE = "apt-get install chromium"
REQUIRE_BROWSER = "PATROLKIT_REQUIRE_BROWSER"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]
SUPERVISOR_LOGIN = "anna"
SUPERVISOR_NAME = "Анна Сергеевна Ким"
SUPERVISOR_PASSWORD = "correct horse battery"
START_TIMEOUT_S = 60.0
SKIP_PREFIX = "browser tests need"


@dataclass
class LiveServer:
    """A running ``patrol-server run`` process and what it was started with."""

    url: str
    config_path: Path
    db_url: str
    video_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    sessions: sessionmaker[Session]
    login: str = SUPERVISOR_LOGIN
    password: str = SUPERVISOR_PASSWORD
    full_name: str = SUPERVISOR_NAME

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``patrol-server --config <this server's file> ARGS`` as its own process."""
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "--config", str(self.config_path), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"patrol-server {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]


def _toml_config(directory: Path, db_url: str, port: int) -> str:
    def q(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string

    return (
        f"data_dir = {q(directory / 'var')}\n"
        f"[database]\nurl = {q(db_url)}\n"
        f"[http]\nhost = \"127.0.0.1\"\nport = {port}\npublic_url = {q(f'http://127.0.0.1:{port}')}\n"
        "[mqtt]\nembedded = false\nworkers = 0\n"
        f"[storage]\nvideo_dir = {q(directory / 'video')}\n"
        f"[keys]\nsigning_key_file = {q(directory / 'var' / 'server_ed25519.key')}\n"
    )


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the server did not answer /healthz in {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def running_server(directory: Path) -> Iterator[LiveServer]:
    """A fresh database and a ``patrol-server run`` process on it (with one supervisor), stopped afterwards."""
    from server.db.base import make_engine, make_sessionmaker

    directory.mkdir(parents=True, exist_ok=True)
    with fresh_server_db(directory) as db_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config_path = directory / "server.toml"
        config_path.write_text(_toml_config(directory, db_url, port), encoding="utf-8")
        log_path = directory / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATROLKIT_SERVER")}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "--config", str(config_path), "run"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        engine = make_engine(db_url)
        try:
            _wait_healthy(url, process, log_path)
            server = LiveServer(
                url, config_path, db_url, directory / "video", log_path, process, make_sessionmaker(engine)
            )
            password_file = directory / "supervisor.password"
            password_file.write_text(SUPERVISOR_PASSWORD + "\n", encoding="utf-8")
            server.cli(
                "supervisor", "add", SUPERVISOR_LOGIN, "--name", SUPERVISOR_NAME,
                "--password-file", str(password_file),
            )  # fmt: skip
            yield server
        finally:
            _stop(process)
            engine.dispose()


# --- a stop with footage --------------------------------------------------------------------------------

OFFENCE_AT = datetime(2026, 3, 2, 9, 10, tzinfo=UTC)
SEGMENT_FRAMES = 75  # 5 s at 15 fps
SEGMENT_FPS = 15


@dataclass(frozen=True)
class Stop:
    number: str
    device_id: str
    seq: int
    plate: str
    badge: str


def add_protocol_row(
    sessions: sessionmaker[Session], number: str, device_id: str, at: datetime, plate: str, badge: str
) -> None:
    """A synced protocol as the ingest stores it (KZ, article 592.1, paid), and its officer."""
    import server.db.devices  # noqa: F401  (the table protocol.device_id refers to)
    from server.db.protocols import Officer, Protocol

    with sessions() as session, session.begin():
        if session.get(Officer, badge) is None:
            session.add(Officer(badge=badge, full_name="Сейтқали Ержан", unit=""))
        session.add(
            Protocol(
                number=number,
                device_id=device_id,
                jurisdiction="KZ",
                article="592.1",
                article_title="Превышение скорости на 10-20 км/ч",
                offence_at=at,
                offence_date=at.date(),
                place="Астана, пр. Кабанбай батыра 53",
                driver_name="Жанболатов Арман",
                driver_iin="850101300124",
                vehicle_plate=plate,
                officer_badge=badge,
                currency="KZT",
                fine_units=5,
                unit_value_minor=432500,
                unit_year=2026,
                full_minor=2162500,
                reduced_minor=1081250,
                discount_deadline=date(2026, 3, 11),
                dataset_version="kz-2026.1",
                status="paid",
                created_at=at,
                received_at=at,
            )
        )


def seed_stop(server: LiveServer, directory: Path) -> Stop:
    """A new device (``patrol-server device add``), one segment it records at the offence time and uploads
    over signed HTTP to ``server``, and a protocol of that device; returns what was made."""
    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade
    from edge.identity import load_identity
    from edge.recorder.index import DatabaseIndex
    from edge.recorder.journal import Journal
    from edge.recorder.recovery import close_segment_file, segment_name
    from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
    from edge.recorder.signer import SegmentSigner
    from edge.upload.client import UploadClient
    from edge.upload.uploader import Uploader
    from simulators.camera import SyntheticScene

    suffix = uuid.uuid4().hex[:8].upper()
    device_id = f"DEV-WEB-{suffix}"
    directory.mkdir(parents=True, exist_ok=True)
    server.cli("device", "add", device_id, "--out", str(directory / "provisioned"))
    identity = load_identity(device_id, directory / "provisioned" / f"{device_id}.key")

    db_url = f"sqlite:///{directory / 'device.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        device_sessions = make_sessionmaker(engine)
        rec_dir = directory / "rec"
        rec_dir.mkdir()
        journal = Journal(rec_dir)
        seq = journal.next_seq()
        path = rec_dir / segment_name(seq, OFFENCE_AT)
        writer = SegmentWriter(path, 160, 120, SEGMENT_FPS, EncoderSettings())
        scene = SyntheticScene(160, 120)
        for n in range(SEGMENT_FRAMES):
            writer.write(scene.frame(n))
        closed = writer.close()
        signer = SegmentSigner(device_id, identity.private_key, identity.kid)
        entry = close_segment_file(
            journal, signer, path, seq, OFFENCE_AT, closed.frames, SEGMENT_FPS, repaired=False
        )
        DatabaseIndex(device_sessions, device_id).segment_closed(entry, path)
        with httpx.Client(timeout=30) as http:
            result = Uploader(device_sessions, rec_dir, UploadClient(server.url, identity, http=http)).run_once()
        assert (result.confirmed, result.stopped_because) == (1, "done"), result
    finally:
        engine.dispose()
    stop = Stop(f"KZ-{suffix}/7", device_id, seq, f"{suffix[:3]}ABC01", f"B-{suffix[:4]}")
    add_protocol_row(server.sessions, stop.number, device_id, OFFENCE_AT, stop.plate, stop.badge)
    return stop


# --- the browser ----------------------------------------------------------------------------------------


def fold_browser_skip(report: pytest.TestReport) -> None:
    """Report every browser test skipped for want of Chromium or Playwright at one place (the line of
    ``require_chromium``), so that the summary folds them into one line however many test files there are
    (``tests/conftest.py`` calls it for each report)."""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and str(longrepr[2]).removeprefix("Skipped: ").startswith(
        SKIP_PREFIX
    ):
        report.longrepr = (__file__, require_chromium.__code__.co_firstlineno, longrepr[2])


def require_chromium() -> None:
    """Skip the calling test when Chromium or Playwright is missing (one line naming what to install), or
    fail instead when ``PATROLKIT_REQUIRE_BROWSER=1``."""
    reason = ""
    if not CHROMIUM.exists():
        reason = f"{SKIP_PREFIX} Chromium at {CHROMIUM}: {CHROMIUM_PACKAGE}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = f"{SKIP_PREFIX} Playwright for Python: pip install -e '.[dev]'"
    if reason:
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{reason} ({REQUIRE_BROWSER}=1)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (one per test module: see the module text)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies, no cache) and one page in it."""
    context = browser.new_context(locale="ru-RU")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``patrol-server run`` on a fresh database with one supervisor, shared by the tests of one module."""
    with running_server(tmp_path_factory.mktemp("live-server")) as server:
        yield server
