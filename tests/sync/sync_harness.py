"""Helpers of the sync tests (imported by conftest and tests via sys.path): a provisioned device on a migrated device DB, a server key, running workers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.sync.broker_url import parse_broker_url
from core.sync.records import Payment, Protocol, Segment
from core.sync.signing import KeyRing, Signer, Verifier
from edge.sync.outbox import enqueue_many, stats
from edge.sync.sender import SenderSettings, SyncSender
from server.commands.device import ProvisionedDevice, add_device
from server.ingest.metrics import IngestMetrics
from server.ingest.worker import IngestSettings, IngestWorker
from simulators.demo import free_port

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Accounts(typing.Protocol):
    """The broker's accounts (``BrokerAccounts`` in tests/conftest.py)."""

    ingest_password: str
    observer_password: str

    def add(self, username: str, password: str) -> None: ...


@dataclass
class CertificateAccounts:
    """A broker that takes identities from TLS client certificates: no passwords to register."""

    ingest_password: str = ""
    observer_password: str = ""

    def add(self, username: str, password: str) -> None:
        pass


@dataclass
class SyncRig:
    mqtt_url: str
    server: sessionmaker[Session]
    device: sessionmaker[Session]
    dev: ProvisionedDevice
    server_signer: Signer
    workers: list[IngestWorker]
    senders: list[SyncSender]
    accounts: Accounts
    # unique per test: a dead worker's persistent session stays in its share group on a persistent broker
    share_group: str = field(default_factory=lambda: f"ingest{uuid.uuid4().hex[:8]}")

    @property
    def signer(self) -> Signer:
        return Signer.from_b64(self.dev.private_key_b64)

    def worker(self, n: int = 1, shared: bool = False, client_id: str | None = None, clock: Clock | None = None,
               metrics: IngestMetrics | None = None, **kw: Any) -> IngestWorker:  # fmt: skip
        w = IngestWorker(
            IngestSettings(
                mqtt_url=self.mqtt_url,
                client_id=client_id or f"ingest-{uuid.uuid4().hex[:8]}-{n}",
                username="ingest-svc",
                password=self.accounts.ingest_password,
                shared_group=self.share_group if shared else None,
                **kw,
            ),
            self.server,
            self.server_signer,
            clock,
            metrics,
        )
        w.start()
        self.workers.append(w)
        assert w.wait_subscribed(20), "ingest worker did not subscribe"
        return w

    def sender(self, **kw: Any) -> SyncSender:
        s = SyncSender(
            SenderSettings(
                mqtt_url=self.mqtt_url,
                device_id=self.dev.device_id,
                username=self.dev.mqtt_username,
                password=self.dev.mqtt_password,
                **kw,
            ),
            self.device,
            self.signer,
            KeyRing([Verifier(self.server_signer.public_raw())]),
        )
        s.start()
        self.senders.append(s)
        return s

    def pending(self) -> int:
        with self.device() as session:
            return stats(session).pending


def raw_client(url: str, username: str, password: str, client_id: str | None = None) -> mqtt.Client:
    """A plain paho client, connected and looping (as an outsider would use the broker)."""
    addr = parse_broker_url(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or username, protocol=mqtt.MQTTv311)
    c.username_pw_set(username, password)
    c.connect(addr.host, addr.port)
    c.loop_start()
    return c


def publish_as(url: str, username: str, password: str, messages: list[tuple[str, bytes]],
               client_id: str | None = None) -> None:  # fmt: skip
    """Publish ``(topic, payload)`` pairs at QoS 1 over one connection, then disconnect."""
    c = raw_client(url, username, password, client_id)
    try:
        for topic, data in messages:
            c.publish(topic, data, qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll until ``cond()`` (the work happens in other threads/processes); fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def protocol_body(number: str, status: str = "open") -> dict[str, Any]:
    return Protocol(
        number=number,
        jurisdiction="KZ",
        article="610-1",
        offence_at=T0,
        offence_date=date(2026, 3, 2),
        driver_name="ИВАНОВ ИВАН",
        driver_iin="900101300123",
        vehicle_plate="123ABC01",
        officer_badge="B-17",
        officer_name="Сержант Петров",
        currency="KZT",
        fine_units=10,
        unit_value_minor=393_200,
        unit_year=2026,
        full_minor=3_932_000,
        reduced_minor=1_966_000,
        discount_deadline=date(2026, 3, 9),
        dataset_version="tariffs@1",
        status=status,
        created_at=T0,
    ).to_body()


def payment_body(pid: str, number: str) -> dict[str, Any]:
    return Payment(
        id=pid,
        protocol_number=number,
        amount_minor=1_966_000,
        currency="KZT",
        full_amount_minor=3_932_000,
        status="approved",
        masked_pan="************1234",
        name_check="MATCH",
        officer_badge="B-17",
        approved_at=T0,
    ).to_body()


def segment_body(i: int) -> dict[str, Any]:
    return Segment(
        segment_id=str(uuid.uuid4()),
        recording_id="rec-1",
        seq=i,
        started_at=T0 + timedelta(minutes=i),
        ended_at=T0 + timedelta(minutes=i + 1),
        file_name=f"seg{i:05d}.mp4",
        size_bytes=1000 + i,
        sha256=f"{i:064x}",
    ).to_body()


def fill_outbox(device: sessionmaker[Session], n: int, prefix: str = "N") -> None:
    """``n`` records: a protocol and its payment for every 10, segment metadata for the rest."""
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        if i % 10 == 0:
            records.append(("protocol", protocol_body(f"{prefix}{i}")))
        elif i % 10 == 1:
            records.append(("payment", payment_body(str(uuid.uuid4()), f"{prefix}{i - 1}")))
        else:
            records.append(("segment", segment_body(i)))
    with device() as session, session.begin():
        enqueue_many(session, records, now=T0)


def provision(server: sessionmaker[Session]) -> tuple[ProvisionedDevice, Signer]:
    """A freshly registered device of a unique id, and its signing key."""
    with server() as session, session.begin():
        dev = add_device(session, f"PD-{uuid.uuid4().hex[:8]}", T0)
    return dev, Signer.from_b64(dev.private_key_b64)


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


REQUIRE_MOSQUITTO = "PATROLKIT_REQUIRE_MOSQUITTO"
NO_MOSQUITTO = "needs the mosquitto binary: apt-get install mosquitto"


def require_mosquitto() -> str:
    """The mosquitto binary of a test that starts its own broker; without one the test is skipped with one line
    naming the package, or fails when ``PATROLKIT_REQUIRE_MOSQUITTO=1`` (CI, which installs it)."""
    binary = mosquitto_binary()
    if binary is None:
        if os.environ.get(REQUIRE_MOSQUITTO) == "1":
            pytest.fail(f"{NO_MOSQUITTO} ({REQUIRE_MOSQUITTO}=1)", pytrace=False)
        pytest.skip(NO_MOSQUITTO)
    return binary


class PrivateMosquitto:
    """A Mosquitto of one test on a free port, with a stock configuration: only a listener and anonymous
    access; ``max_queued_messages`` 1000, ``max_inflight_messages`` 20, no persistence, Nagle on."""

    def __init__(self, tmp: Path) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.port = free_port()
        self.conf = tmp / "mosquitto-stock.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self._cmd = [binary, "-c", str(self.conf)]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None


@contextmanager
def on_private_mosquitto(rig: SyncRig, tmp: Path) -> Iterator[tuple[SyncRig, PrivateMosquitto]]:
    """``rig`` (the same device, server database and cleanup lists) on a Mosquitto of the test's own, started,
    which the test may stop and start again; stopped at the end."""
    require_mosquitto()
    broker = PrivateMosquitto(tmp)
    broker.start()
    try:
        yield replace(rig, mqtt_url=broker.url), broker
    finally:
        broker.stop()
