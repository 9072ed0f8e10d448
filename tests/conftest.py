"""Shared fixtures: the MQTT broker and server database under test (real ones from the environment, else
embedded defaults), a migrated device database, and a fake clock.

- ``PATROLKIT_TEST_MQTT_URL`` (e.g. ``mqtt://127.0.0.1:1883``): use that broker; else an amqtt broker is started.
- ``PATROLKIT_TEST_DB_URL`` (e.g. ``postgresql+psycopg://root@127.0.0.1:5432/test``): each test gets a fresh
  database created next to it on that server and dropped afterwards; else a fresh SQLite file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from server.mqtt_accounts import hash_password
from server.mqtt_acl import PACKAGED_ACL
from simulators.demo import free_port

from .browser_support import browser, fold_browser_skip, live_server, page  # noqa: F401  (fixtures for every test)
from .databases import fresh_server_db
from .s3_support import s3_store, seaweedfs  # noqa: F401  (fixtures: a real SeaweedFS and a bucket on it)

ROOT = Path(__file__).resolve().parent.parent

# CI runs two suites side by side on two cores: how fast hypothesis makes inputs, or runs one, is not what the
# property tests assert (each still runs all its examples)
settings.register_profile("patrolkit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("patrolkit")


def _wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


@dataclass
class BrokerAccounts:
    """The accounts of the broker under test. The embedded one (``server.broker``) checks them: a Mosquitto
    password file it reads again when it changes, and the production ACL plus a read-only observer for tests
    that watch another client's topics. An external broker (``PATROLKIT_TEST_MQTT_URL``) has its own
    accounts: ``add`` does nothing there."""

    password_file: Path | None
    ingest_password: str = field(default_factory=lambda: uuid.uuid4().hex)
    observer_password: str = field(default_factory=lambda: uuid.uuid4().hex)

    def add(self, username: str, password: str) -> None:
        if self.password_file is not None:
            with self.password_file.open("a", encoding="utf-8") as fh:
                fh.write(f"{username}:{hash_password(password)}\n")


OBSERVER = "test-observer"  # may read every pd/v1 topic of the embedded test broker (tests/conftest.py)


def start_embedded_broker(directory: Path, port: int) -> tuple[subprocess.Popen[bytes], BrokerAccounts]:
    """``python -m server.broker`` on ``port`` with a password file (``ingest-svc`` and the observer in it)
    and the production ACL plus the observer's read rule, all in ``directory``."""
    accounts = BrokerAccounts(directory / "passwd")
    accounts.password_file.write_text("")  # type: ignore[union-attr]
    accounts.add("ingest-svc", accounts.ingest_password)
    accounts.add(OBSERVER, accounts.observer_password)
    acl = directory / "patrolkit-test.acl"
    acl.write_text(PACKAGED_ACL.read_text(encoding="utf-8") + f"\nuser {OBSERVER}\ntopic read pd/v1/#\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.broker", "--host", "127.0.0.1", "--port", str(port),
         "--password-file", str(accounts.password_file), "--acl-file", str(acl)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_port("127.0.0.1", port, 20)
    return proc, accounts


@pytest.fixture(scope="session")
def _broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, BrokerAccounts]]:
    env = os.environ.get("PATROLKIT_TEST_MQTT_URL")
    if env:
        yield env, BrokerAccounts(None)
        return
    port = free_port()
    proc, accounts = start_embedded_broker(tmp_path_factory.mktemp("broker"), port)
    try:
        yield f"mqtt://127.0.0.1:{port}", accounts
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def mqtt_url(_broker: tuple[str, BrokerAccounts]) -> str:
    """URL of the broker under test: the real one from the environment, or an amqtt broker started here.

    The embedded broker checks accounts and the ACL as production does: see ``broker_accounts``."""
    return _broker[0]


@pytest.fixture(scope="session")
def broker_accounts(_broker: tuple[str, BrokerAccounts]) -> BrokerAccounts:
    return _broker[1]


@pytest.fixture(scope="session")
def backend_names(mqtt_url: str) -> dict[str, str]:
    """Which real or embedded backends this run uses (for messages)."""
    db = os.environ.get("PATROLKIT_TEST_DB_URL", "sqlite")
    return {"mqtt": mqtt_url, "db": db.split("@")[-1]}


@pytest.fixture
def server_db_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty server database for one test (PostgreSQL when configured, else SQLite)."""
    with fresh_server_db(tmp_path) as url:
        yield url


@pytest.fixture
def server_sessions(server_db_url: str) -> Iterator[sessionmaker[Session]]:
    """Session factory on a freshly migrated server database."""
    from server.db.base import make_engine, make_sessionmaker
    from server.db.migrate import upgrade

    upgrade(server_db_url)
    engine = make_engine(server_db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def device_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'device.db'}"


@pytest.fixture
def device_sessions(device_db_url: str) -> Iterator[sessionmaker[Session]]:
    """Session factory on a freshly migrated device database (SQLite, WAL)."""
    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade

    upgrade(device_db_url)
    engine = make_engine(device_db_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


_BACKEND_FIXTURES = {"mqtt_url", "broker_accounts", "server_db_url", "server_sessions", "live_server"}


# CI runs the suite twice side by side: on the real services and on the embedded defaults. Each run takes every
# backend test; the other tests are shared out between the two runs (``PATROLKIT_TEST_SHARE``), by folder.
TEST_SHARES = ("services", "embedded")
_EMBEDDED_SHARE = ("officer_app", "processes")  # folders whose tests without a backend go to the embedded run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that talks to the broker or the server database, so CI can rerun exactly those on the
    other backend pair (``-m backend``); with ``PATROLKIT_TEST_SHARE`` set, keep the backend tests and this
    run's share of the others."""
    for item in items:
        if _BACKEND_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.backend)
    share = os.environ.get("PATROLKIT_TEST_SHARE")
    if not share:
        return
    if share not in TEST_SHARES:
        raise pytest.UsageError(f"PATROLKIT_TEST_SHARE={share!r}: expected one of {', '.join(TEST_SHARES)}")
    kept, dropped = [], []
    for item in items:
        folder = Path(str(item.path)).relative_to(ROOT / "tests").parts[0]
        embedded_share = folder in _EMBEDDED_SHARE
        mine = item.get_closest_marker("backend") is not None or embedded_share == (share == "embedded")
        (kept if mine else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Browser tests skipped for want of Chromium are summed up in one line (``fold_browser_skip``)."""
    report = yield
    fold_browser_skip(report)
    return report
