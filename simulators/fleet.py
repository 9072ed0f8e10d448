"""Fleet simulator: N devices, each the real sync sender (``edge.sync.sender``) on its own migrated SQLite
device database, drain M records each through a real broker into ingest workers (their own processes, started
through ``server.ingest``'s worker and supervisor) and a server database. Measures records/s, the ack latency
of every record (publish to signed ack), the memory per simulated device and the ingest's and broker's memory,
can restart the broker midway, and checks that every record is stored exactly once.

The devices run in device processes of ``per_process`` devices each (``simulators.fleet_devices``), so that
their Python work spreads over the cores. ``Drive.THREADS`` runs each sender as on a device: its own thread,
stepping at least every 50 ms, plus paho's network thread (paho's ``select()`` then caps a process near 150
devices). With a hundred devices in one interpreter those threads take the CPU and the GIL from the rest, so
``Drive.SHARED`` steps the same senders (``SyncSender.step``, the real logic) from a few driver threads (a
sender at once when it has an event queued or room left to fill, else every ``idle_step_s``), and one network
thread per process moves every client's bytes (``simulators.fleet_net``: paho's external loop on epoll). The
broker is the embedded amqtt broker (in this process, restartable), a Mosquitto started here on a free port, or
an external one at a URL (not restartable).
"""

from __future__ import annotations

import base64
import enum
import json
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.sync.records import Payment, Protocol, Segment
from core.sync.signing import Signer
from edge.db.base import make_engine as edge_engine
from edge.db.base import make_sessionmaker as edge_sessions
from edge.db.migrate import upgrade as edge_upgrade
from edge.sync.outbox import enqueue_many, seal_pending, stats
from edge.sync.sender import SyncSender
from server.commands.device import ProvisionedDevice, add_device
from server.db.base import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server.db.sync import SyncInbox
from simulators.demo import free_port
from simulators.fleet_net import NetLoop

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INGEST_USER = "ingest-svc"


class BrokerKind(enum.Enum):
    """Where the simulated devices connect: a broker this simulator runs (and can restart), or an external one."""

    EMBEDDED = "embedded"
    MOSQUITTO = "mosquitto"
    EXTERNAL = "external"


class Drive(enum.Enum):
    """Who calls the senders' ``step``: each sender's own thread (as on a device), or a few shared threads."""

    THREADS = "threads"
    SHARED = "shared"


@dataclass(frozen=True)
class FleetSettings:
    devices: int = 20
    records: int = 10
    broker: BrokerKind = BrokerKind.EMBEDDED
    mqtt_url: str | None = None  # with BrokerKind.EXTERNAL
    db_url: str | None = None  # server database; None: a SQLite file in ``workdir``
    ingest_workers: int = 1  # ingest processes (one worker each; a shared subscription when more than one)
    window: int = 1000
    batch: int = 100
    ack_timeout_s: float = 30.0  # the sender's: a record not acked by then is sent again
    reconnect_min_s: float = 1.0  # the sender's jitter window after a loss: [min/2, min] seconds
    restart_broker: bool = False  # restart the broker once half of the records are acked
    credit: bool = True  # admission by credit; False: devices never ask and send within their window alone
    credit_target_s: float = 0.5  # the ingest's arrival-to-ack target for its credit budget
    timeout_s: float = 600.0
    drive: Drive = Drive.SHARED
    drivers: int = 4  # with Drive.SHARED: driver threads
    idle_step_s: float = 15.0  # with Drive.SHARED: a sender with nothing to do is stepped this often (it
    # then only looks for overdue records, whose timeout is at least ``ack_timeout_s``, and rescans its outbox)
    per_process: int = 150  # devices per device process (with Drive.THREADS, paho's select() takes no
    # descriptor above 1023)
    progress_s: float = 0.1  # how often each device process reports its acks (the restart waits for half)
    start_spread_s: float = 0.0  # with Drive.SHARED: each device first connects at a uniform random time in
    # [0, start_spread_s] after the start (0: all at once), as a fleet comes back after an outage


@dataclass
class FleetResult:
    devices: int
    records_per_device: int
    elapsed_s: float
    records_per_s: float
    ack_p50_s: float
    ack_p99_s: float
    ack_max_s: float
    stored: int
    distinct_stored: int
    device_pending: int
    resends: int
    rss_per_device_kib: float
    sim_rss_peak_mib: float
    ingest_rss_peak_mib: float
    broker_rss_peak_mib: float | None  # None: the broker lives in this process or elsewhere
    restart: RestartResult | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds during the drain, by process
    processes: int = 1  # device processes
    server_ack_le: list[list[float]] = field(default_factory=list)  # the ingest's arrival-to-ack buckets

    def server_ack_bound_s(self, q: float) -> float | None:
        """The bucket bound under which a share ``q`` of messages were acked, timed by the ingest from their
        arrival; None when unknown."""
        total = self.server_ack_le[-1][1] if self.server_ack_le else 0
        return next((le for le, n in self.server_ack_le if n >= q * total), None) if total else None

    @property
    def exactly_once(self) -> bool:
        want = self.devices * self.records_per_device
        return self.stored == want and self.distinct_stored == want and self.device_pending == 0

    def lines(self) -> list[str]:
        out = [
            f"fleet: {self.devices} devices x {self.records_per_device} records in {self.elapsed_s:.2f} s: "
            f"{self.records_per_s:.0f} records/s; ack latency p50 {self.ack_p50_s * 1000:.0f} ms, "
            f"p99 {self.ack_p99_s * 1000:.0f} ms, max {self.ack_max_s * 1000:.0f} ms",
            f"stored {self.stored} (distinct {self.distinct_stored}), device pending {self.device_pending}, "
            f"resends {self.resends}: {'exactly once' if self.exactly_once else 'NOT exactly once'}",
            f"memory: {self.rss_per_device_kib:.0f} KiB RSS per simulated device ({self.processes} device processes, peak "
            f"{self.sim_rss_peak_mib:.0f} MiB); ingest peak {self.ingest_rss_peak_mib:.0f} MiB; broker peak "
            + (f"{self.broker_rss_peak_mib:.0f} MiB" if self.broker_rss_peak_mib is not None else "n/a"),
        ]
        p50, p99 = self.server_ack_bound_s(0.50), self.server_ack_bound_s(0.99)
        if p50 is not None and p99 is not None:
            out.append(
                f"the ingest's own arrival-to-ack time ({self.server_ack_le[-1][1]:.0f} messages, histogram buckets): "
                f"p50 <= {p50:g} s, "
                f"p99 <= {p99:g} s; the rest of the devices' ack latency is the broker and the devices themselves"
            )
        if self.cpu_s:
            out.append(
                "CPU seconds during the drain: " + ", ".join(f"{k}={v:.1f}" for k, v in self.cpu_s.items())
            )
        if self.restart is not None:
            out.append(self.restart.line())
        return out


@dataclass
class RestartResult:
    """The broker restart: how long it was down and how long each device took to be back after it was up."""

    down_s: float
    reconnected: int
    devices: int
    window_s: tuple[float, float]  # the first reconnect delay after a loss lies in this range
    reconnect_p50_s: float
    reconnect_max_s: float  # from the broker going down to a device's CONNACK
    attempt_max_s: float = 0.0  # from the broker going down to a device's first reconnect attempt (TCP open)
    attempts_while_down: int = (
        0  # first attempts that came before the broker was back (paho retries them later)
    )

    @property
    def all_within_window(self) -> bool:
        """Every device back by the end of its first jittered wait after the loss, plus the time the broker
        was down and 1 s for the reconnect itself (TCP, CONNECT/CONNACK, on a loaded machine)."""
        return (
            self.reconnected == self.devices and self.reconnect_max_s <= self.window_s[1] + self.down_s + 1.0
        )

    def line(self) -> str:
        return (
            f"broker restart: down {self.down_s:.2f} s; {self.reconnected}/{self.devices} devices reconnected, "
            f"p50 {self.reconnect_p50_s:.2f} s, max {self.reconnect_max_s:.2f} s after the loss "
            f"(jitter window {self.window_s[0]:.1f}-{self.window_s[1]:.1f} s); first attempts by "
            f"{self.attempt_max_s:.2f} s, {self.attempts_while_down} of them while the broker was still down"
        )


class TimedSender(SyncSender):
    """The real sender, timing each record from its first publish to the signed ack that frees it (a record
    in flight when its link dropped, or resent after a timeout, keeps its first publish time), and noting the
    time of each CONNACK."""

    def __init__(self, *args: Any, shared: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.shared = shared  # stepped by a ``Driver``: ``start`` connects, its own thread ends at once
        self.wake: threading.Event | None = None  # set by ``Driver``: an event for this sender arrived
        self.net: NetLoop | None = None  # set by ``attach``: that loop moves its client's bytes
        self._last_delay = 0.0  # the last jittered reconnect delay it chose
        self.start_after_s = 0.0  # with ``attach``: its first connect comes this long after ``start``
        self.latencies: list[float] = []
        self.connects: list[float] = []
        self.attempts: list[float] = []  # monotonic times its client opened a socket to the broker
        self._acking = False
        self._first_sent: dict[int, float] = {}  # seq -> its first publish, for a record published again
        self._stepped = 0.0  # monotonic time of its last step (a credit deadline wakes it once)
        opened = self._client.on_socket_open

        def note_attempt(client: mqtt.Client, ud: Any, sock: Any) -> None:
            self.attempts.append(time.monotonic())
            if opened is not None:
                opened(client, ud, sock)

        self._client.on_socket_open = note_attempt

    @property
    def client(self) -> mqtt.Client:
        return self._client

    @property
    def reconnect_min_s(self) -> float:
        return self.settings.reconnect_min_s

    @property
    def reconnect_max_s(self) -> float:
        return self.settings.reconnect_max_s

    def attach(self, net: NetLoop, start_after_s: float = 0.0) -> None:
        """Let ``net`` (one thread for the process) move this sender's bytes instead of paho's own thread; its
        first connect comes ``start_after_s`` after ``start``."""
        self.net = net
        self.start_after_s = start_after_s

    def boot(self) -> None:
        """What a device does at boot, before it goes online: open its database (the sender's session and
        its watch connection) and take back the chunks of a cut download. Done before the fleet's start, so
        the drain is timed from devices that are up, as a fleet's devices are when a broker comes back. A
        sender on a network thread of its own takes its chunks back in ``start``, as on a device."""
        if self.net is not None:
            self.resume_downloads()
        self._data_version()

    def start(self) -> None:
        if self.net is None:
            super().start()
            return
        self.net.add(self, self._addr.host, self._addr.port, keepalive=30, after_s=self.start_after_s)

    def run(self) -> None:
        if not self.shared:
            super().run()

    def next_reconnect_delay(self) -> float:
        self._last_delay = super().next_reconnect_delay()
        return self._last_delay

    def has_work(self) -> bool:
        """An event is queued, the greeting is due, the last fill stopped with room left in the window, or its
        credit changes now (an ask to send again, the end of its probe)."""
        due = self.credit_due
        return (
            self._more or self._greet_due or not self._events.empty()
            or (due is not None and self._stepped < due <= self._clock.monotonic())
        )  # fmt: skip

    def drive_once(self) -> None:
        """One step, with ``run``'s handling of a failed step (logged, in-flight records counted unsent)."""
        self._stepped = self._clock.monotonic()
        try:
            self.step(0.0)
            self.last_error = None
        except Exception as exc:  # as ``run``: the sender goes on once the fault clears
            self.step_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            logging.getLogger(__name__).error("fleet.step_failed", exc_info=True)
            self._forget_all()
            self._restart_pass()

    def _on_connect(self, client: mqtt.Client, ud: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connects.append(time.monotonic())
        super()._on_connect(client, ud, flags, reason, props)
        self._wake_driver()

    def _on_disconnect(self, *args: Any) -> None:
        super()._on_disconnect(*args)
        if self.net is not None:
            self.net.reconnect_later(self, self._last_delay)
        self._wake_driver()

    def _on_message(self, client: mqtt.Client, ud: Any, msg: mqtt.MQTTMessage) -> None:
        super()._on_message(client, ud, msg)
        self._wake_driver()

    def _wake_driver(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def _handle_ack(self, data: bytes) -> None:
        self._acking = True
        try:
            super()._handle_ack(data)
        finally:
            self._acking = False

    def _forget(self, seq: int) -> None:
        flight = self._inflight.get(seq)
        if self._acking:  # freed by an ack, perhaps of a publish from before the link dropped
            first = self._first_sent.pop(seq, None)
            sent = first if first is not None else flight.sent if flight is not None else None
            if sent is not None:
                self.latencies.append(self._clock.monotonic() - sent)
        elif flight is not None:  # to be published again: its latency still counts from its first publish
            self._first_sent.setdefault(seq, flight.sent)
        super()._forget(seq)

    def _forget_all(self) -> None:
        for seq, flight in self._inflight.items():  # a lost link: each is published again once reconnected
            self._first_sent.setdefault(seq, flight.sent)
        super()._forget_all()


class Driver:
    """A few threads stepping many shared senders: each thread owns a slice of them."""

    def __init__(self, senders: list[TimedSender], threads: int, idle_step_s: float) -> None:
        self._slices = [senders[n::threads] for n in range(max(1, threads))]
        self._idle_step_s = idle_step_s
        self._stop = threading.Event()
        self._wakes = [threading.Event() for _ in self._slices]  # one per thread, set by its senders' events
        for part, wake in zip(self._slices, self._wakes, strict=True):
            for sender in part:
                sender.wake = wake
        self._threads = [
            threading.Thread(target=self._loop, args=(part, wake), name=f"fleet-driver-{n}", daemon=True)
            for n, (part, wake) in enumerate(zip(self._slices, self._wakes, strict=True))
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for wake in self._wakes:
            wake.set()
        for t in self._threads:
            t.join(10)

    def _loop(self, senders: list[TimedSender], wake: threading.Event) -> None:
        """Step each sender that has work, and every sender at least every ``idle_step_s``; between rounds
        with nothing to do, sleep until one of them gets an event (no polling)."""
        last = [0.0] * len(senders)
        while not self._stop.is_set():
            wake.clear()  # an event arriving from here on wakes the next wait
            worked = False
            now = time.monotonic()
            for i, sender in enumerate(senders):
                if sender.has_work() or now - last[i] >= self._idle_step_s:
                    sender.drive_once()
                    last[i] = now
                    worked = True
            if not worked:  # until the stalest sender is due, or the first credit deadline
                dues = [d for d in (s.credit_due for s in senders) if d is not None and d > now]
                wake.wait(max(0.0, min([min(last) + self._idle_step_s, *dues]) - now))


def share_compiled_statements(engines: list[Engine]) -> list[Engine]:
    """The same engines, compiling each SQL statement once for all of them instead of once per engine.

    A device has one engine and compiles its few statements once, at boot. A simulator process holding a
    hundred devices would compile them a hundred times (SQLAlchemy keys its cache by engine and dialect), a
    cost no real fleet pays and which takes most of the simulator's CPU. So every engine here uses the first
    engine's dialect (initialised by connecting once: the same SQLite library for all) and one statement
    cache; each keeps its own database file and connection pool."""
    if not engines:
        return []
    first = engines[0]
    with first.connect():
        pass  # the first connection initialises the dialect (SQLite version, features)
    cache: dict[Any, Any] = {}
    shared: list[Engine] = []
    for engine in engines:
        engine.dialect = first.dialect
        shared.append(engine.execution_options(compiled_cache=cache))
    return shared


def device_records(prefix: str, m: int) -> list[tuple[str, dict[str, Any]]]:
    """``m`` records of one device: a protocol and its payment for every 10, segment metadata for the rest."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(m):
        if i % 10 == 0:
            body = Protocol(
                number=f"{prefix}{i}", jurisdiction="KZ", article="610-1", offence_at=T0,
                offence_date=date(2026, 3, 2), driver_name="ИВАНОВ ИВАН", driver_iin="900101300123",
                vehicle_plate="123ABC01", officer_badge="B-17", officer_name="Сержант Петров", currency="KZT",
                fine_units=10, unit_value_minor=393_200, unit_year=2026, full_minor=3_932_000,
                reduced_minor=1_966_000, discount_deadline=date(2026, 3, 9), dataset_version="tariffs@1",
                status="open", created_at=T0,
            ).to_body()  # fmt: skip
            out.append(("protocol", body))
        elif i % 10 == 1:
            body = Payment(
                id=str(uuid.uuid4()), protocol_number=f"{prefix}{i - 1}", amount_minor=1_966_000, currency="KZT",
                full_amount_minor=3_932_000, status="approved", masked_pan="************1234", name_check="MATCH",
                officer_badge="B-17", approved_at=T0,
            ).to_body()  # fmt: skip
            out.append(("payment", body))
        else:
            body = Segment(
                segment_id=str(uuid.uuid4()), recording_id=f"{prefix}rec", seq=i,
                started_at=T0 + timedelta(minutes=i), ended_at=T0 + timedelta(minutes=i + 1),
                file_name=f"seg{i:05d}.mp4", size_bytes=1000 + i, sha256=f"{i:064x}",
            ).to_body()  # fmt: skip
            out.append(("segment", body))
    return out


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Until something listens on 127.0.0.1:``port`` (a broker just started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} after {timeout} s")


def restartable_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a broker restarted on the same port.

    While the broker is down its devices keep dialling it; a client socket whose ephemeral source port happens
    to equal the port it dials connects to itself on loopback (TCP simultaneous open) and then holds that
    port, so the restarted broker could not bind it. Below the ephemeral range no client socket gets it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randint(10000, max(10001, low - 1))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def rss_kib(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default) from ``/proc``; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU seconds of a process (this one by default) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """The PostgreSQL server processes of this machine (their CPU is the database's share of a run)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class OwnMosquitto:
    """A Mosquitto of this run on a free loopback port: anonymous, and otherwise as ``deploy/mosquitto``
    (TCP_NODELAY, persistence, the production queue limits): stopped, it saves the ingest's persistent
    session and its queued messages, and ``start`` again on the same port loads them."""

    def __init__(self, directory: Path) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("needs the mosquitto binary: apt-get install mosquitto")
        self.port = restartable_port()
        conf = directory / "mosquitto-fleet.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            "max_queued_messages 100000\nmax_inflight_messages 500\nmax_connections -1\n"
            f"persistence true\npersistence_location {directory}/\nautosave_interval 60\n"
            + ("user root\n" if os.geteuid() == 0 else "")  # else it drops to a user who cannot write here
            + f"log_dest file {directory / 'mosquitto.log'}\nlog_type error\nlog_type warning\nlog_type notice\n"
        )
        self._cmd = [binary, "-c", str(conf)]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None


class OwnEmbedded:
    """The embedded amqtt broker (``server.broker``) on a thread of this process, checking the devices'
    accounts in the server database and the ingest account; restartable on the same port."""

    def __init__(self, sessions: sessionmaker[Session], ingest_password: str) -> None:
        from server.broker import Gate
        from server.mqtt_accounts import Accounts, DeviceAccounts, ServiceAccount
        from server.mqtt_acl import Acl

        self.port = restartable_port()
        accounts = Accounts([ServiceAccount(INGEST_USER, ingest_password), DeviceAccounts(sessions)])
        self._gate = Gate(accounts, Acl.load())
        self._thread: threading.Thread | None = None
        self._stop: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None

    def start(self) -> None:
        from server.broker import start_in_thread

        self._thread, self._stop = start_in_thread("127.0.0.1", self.port, self._gate)
        wait_port(self.port)

    def stop(self) -> None:
        if self._stop is not None and self._thread is not None:
            self._stop()
            self._thread.join(30)
        self._thread = self._stop = None


class ExternalBroker:
    """A broker run by someone else: nothing to start, never restarted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pid: int | None = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


Broker = OwnMosquitto | OwnEmbedded | ExternalBroker


@dataclass
class SimDevice:
    dev: ProvisionedDevice
    db_path: Path
    engine: Engine
    sessions: sessionmaker[Session]


@dataclass
class _Peaks:
    """Peak RSS (KiB) of the device processes (summed), the ingest processes (summed) and the broker."""

    sim: int = 0
    ingest: int = 0
    broker: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self, group_pids: list[int], ingest_pids: list[int], broker_pid: int | None) -> None:
        self.sim = max(self.sim, sum(rss_kib(p) for p in group_pids))
        self.ingest = max(self.ingest, sum(rss_kib(p) for p in ingest_pids))
        if broker_pid is not None:
            self.broker = max(self.broker, rss_kib(broker_pid))

    def watch(
        self, group_pids: list[int], ingest_pids: list[int], broker: Broker, every_s: float = 0.25
    ) -> threading.Thread:
        def loop() -> None:
            while not self.stop.wait(every_s):
                self.sample(group_pids, ingest_pids, broker.pid)

        t = threading.Thread(target=loop, name="fleet-rss", daemon=True)
        t.start()
        return t


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class DeviceGroup:
    """A process running a slice of the fleet's devices (``simulators.fleet_devices``): its progress (acked
    records and connect times per device) is read from its output as it runs."""

    def __init__(self, spec: Path, devices: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.fleet_devices", str(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.acked = [0] * devices
        self.connects: list[list[float]] = [[] for _ in range(devices)]
        self.attempts: list[list[float]] = [[] for _ in range(devices)]
        self._final: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, name="fleet-group-reader", daemon=True)

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a device process did not start")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self._reader.start()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            got = json.loads(line)
            self.acked = got["acked"]
            if got.get("final"):
                self.connects = got["connects"]
                self._final = got
                continue
            for seen, key in ((self.connects, "connects"), (self.attempts, "attempts")):
                for have, recent in zip(seen, got[key], strict=True):
                    have.extend(t for t in recent if t not in have)

    def finish(self) -> dict[str, Any]:
        """Stop its senders; its final report (every ack latency, resends, memory)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)
        self._reader.join(10)
        if self._final is None:
            raise RuntimeError("a device process ended without its report")
        return self._final


class Fleet:
    """One simulated fleet: ``prepare`` (server database, devices, their databases, broker, ingest), ``run``
    (drain, optionally restarting the broker), ``verify`` (what the server stored); ``close`` stops it all."""

    def __init__(self, settings: FleetSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.db_url = settings.db_url or f"sqlite:///{workdir / 'server.db'}"
        self.server_signer = Signer.generate()
        self.ingest_password = uuid.uuid4().hex
        self.devices: list[SimDevice] = []
        self._ingest: list[subprocess.Popen[str]] = []
        self._server_engine: Engine | None = None
        self.broker: Broker | None = None
        self.run_tag = uuid.uuid4().hex[:6]
        self.connects: list[list[float]] = []  # per device, after ``run``: monotonic times of its CONNACKs
        self.acked_by_device: list[int] = []  # per device, after ``run``: records its sender saw acked

    # --- setup ---
    def prepare(self) -> None:
        s = self.settings
        upgrade(self.db_url)
        self._server_engine = make_engine(self.db_url)
        server = make_sessionmaker(self._server_engine)
        with server() as session, session.begin():
            provisioned = [
                add_device(session, f"PD-fleet-{self.run_tag}-{n:05d}", datetime.now(UTC))
                for n in range(s.devices)
            ]
        # one migrated database, copied per device: the same schema, and each copy makes its own epoch on
        # first use (``database_epoch``)
        template = self.workdir / "device-template.db"
        edge_upgrade(f"sqlite:///{template}")
        for dev in provisioned:
            path = self.workdir / f"{dev.device_id}.db"
            shutil.copyfile(template, path)
            engine = edge_engine(f"sqlite:///{path}")
            sessions = edge_sessions(engine)
            signer = Signer.from_b64(dev.private_key_b64)
            with sessions() as session, session.begin():
                enqueue_many(session, device_records(f"{dev.device_id}-", s.records), now=T0)
                while seal_pending(session, dev.device_id, signer, limit=5000):
                    pass
            self.devices.append(SimDevice(dev, path, engine, sessions))
        if s.broker is BrokerKind.MOSQUITTO:
            self.broker = OwnMosquitto(self.workdir)
        elif s.broker is BrokerKind.EMBEDDED:
            self.broker = OwnEmbedded(server, self.ingest_password)
        else:
            if not s.mqtt_url:
                raise ValueError("an external broker needs its URL")
            self.broker = ExternalBroker(s.mqtt_url)
        self.broker.start()
        self._start_ingest()

    def _start_ingest(self) -> None:
        assert self.broker is not None
        key_file = self.workdir / "server.key"
        key_file.write_text(base64.b64encode(self.server_signer.private_raw()).decode())
        shared = self.settings.ingest_workers > 1 and self.settings.broker is not BrokerKind.EMBEDDED
        group = f"fleet{self.run_tag}" if shared else ""
        for n in range(self.settings.ingest_workers):
            cmd = [sys.executable, "-m", "simulators.fleet_ingest", "--db", self.db_url, "--mqtt-url",
                   self.broker.url, "--key-file", str(key_file), "--password", self.ingest_password,
                   "--client-id", f"fleet-ingest-{self.run_tag}-{n}", "--shared-group", group,
                   "--credit-target", str(self.settings.credit_target_s),
                   *([] if self.settings.credit else ["--no-credit"])]  # fmt: skip
            self._ingest.append(
                subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        for child in self._ingest:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("an ingest worker did not subscribe")

    @property
    def ingest_pids(self) -> list[int]:
        return [c.pid for c in self._ingest]

    # --- the drain ---
    def run(self) -> FleetResult:
        s = self.settings
        assert self.broker is not None
        total = s.devices * s.records
        groups = self._spawn_groups()
        group_pids = [g.proc.pid for g in groups]
        peaks = _Peaks()
        peaks.sample(group_pids, self.ingest_pids, self.broker.pid)
        watcher = peaks.watch(group_pids, self.ingest_pids, self.broker)
        restart: RestartResult | None = None
        cpu0 = self._cpu(group_pids)
        t0 = time.perf_counter()
        for g in groups:
            g.go()
        deadline = time.monotonic() + s.timeout_s
        restarted = not s.restart_broker

        def acked() -> int:
            return sum(sum(g.acked) for g in groups)

        try:
            while acked() < total:
                if time.monotonic() > deadline or any(g.proc.poll() is not None for g in groups):
                    break
                if not restarted and acked() >= total // 2:
                    restart = self._restart_broker(groups)
                    restarted = True
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            done = acked()
            cpu1 = self._cpu(group_pids)
            server_ack_le = self._ingest_ack_histogram()
            peaks.sample(group_pids, self.ingest_pids, self.broker.pid)
        finally:
            peaks.stop.set()
            watcher.join(2)
            finals = [g.finish() for g in groups]
        for g in groups:
            self.connects.extend(g.connects)
            self.acked_by_device.extend(g.acked)
        latencies = [v for f in finals for v in f["latencies"]]
        stored, distinct = self.stored()
        pending = 0
        for d in self.devices:
            with d.sessions() as session:
                pending += stats(session).pending
        grown = sum(max(0, f["rss_peak_kib"] - f["rss_before_kib"]) for f in finals)
        return FleetResult(
            devices=s.devices,
            records_per_device=s.records,
            elapsed_s=elapsed,
            records_per_s=done / elapsed,
            ack_p50_s=percentile(latencies, 0.50),
            ack_p99_s=percentile(latencies, 0.99),
            ack_max_s=max(latencies, default=0.0),
            stored=stored,
            distinct_stored=distinct,
            device_pending=pending,
            resends=sum(int(f["resends"]) for f in finals),
            rss_per_device_kib=grown / max(1, s.devices),
            sim_rss_peak_mib=peaks.sim / 1024,
            ingest_rss_peak_mib=peaks.ingest / 1024,
            broker_rss_peak_mib=peaks.broker / 1024 if self.broker.pid is not None else None,
            restart=restart,
            cpu_s={k: v - cpu0.get(k, 0.0) for k, v in cpu1.items()},
            processes=len(groups),
            server_ack_le=server_ack_le,
        )

    def _ingest_ack_histogram(self) -> list[list[float]]:
        """The ingest processes' arrival-to-ack buckets, summed."""
        summed: dict[float, float] = {}
        for child in self._ingest:
            if child.stdin is None or child.stdout is None or child.poll() is not None:
                return []
            child.stdin.write("report\n")
            child.stdin.flush()
            for le, n in json.loads(child.stdout.readline())["ack_le"]:
                summed[le] = summed.get(le, 0.0) + n
        return [[le, n] for le, n in sorted(summed.items())]

    def _spawn_groups(self) -> list[DeviceGroup]:
        """The device processes, each with its slice of the devices, all ready (senders made, not started)."""
        s = self.settings
        assert self.broker is not None
        per = max(1, s.per_process)
        groups = []
        for n in range(0, len(self.devices), per):
            slice_ = self.devices[n : n + per]
            spec: dict[str, Any] = {
                "mqtt_url": self.broker.url,
                "server_public_b64": base64.b64encode(self.server_signer.public_raw()).decode(),
                "window": s.window, "batch": s.batch, "reconnect_min_s": s.reconnect_min_s,
                "ack_timeout_s": s.ack_timeout_s, "shared": s.drive is Drive.SHARED, "drivers": s.drivers,
                "idle_step_s": s.idle_step_s, "progress_s": s.progress_s, "credit": s.credit,
                "start_spread_s": s.start_spread_s,
                "devices": [
                    {"device_id": d.dev.device_id, "username": d.dev.mqtt_username, "password": d.dev.mqtt_password,
                     "private_key_b64": d.dev.private_key_b64, "db": str(d.db_path)}
                    for d in slice_
                ],
            }  # fmt: skip
            path = self.workdir / f"group{n // per}.json"
            path.write_text(json.dumps(spec))
            groups.append(DeviceGroup(path, len(slice_)))
        for g in groups:
            g.wait_ready()
        return groups

    def _cpu(self, group_pids: list[int]) -> dict[str, float]:
        got = {
            "simulator": sum(cpu_seconds(p) for p in group_pids),
            "ingest": sum(cpu_seconds(p) for p in self.ingest_pids),
        }
        if self.broker is not None and self.broker.pid is not None:
            got["broker"] = cpu_seconds(self.broker.pid)
        if self.db_url.startswith("postgresql"):
            got["postgres"] = sum(cpu_seconds(p) for p in postgres_pids())
        return got

    def _restart_broker(self, groups: list[DeviceGroup]) -> RestartResult:
        assert self.broker is not None
        if isinstance(self.broker, ExternalBroker):
            raise ValueError("an external broker cannot be restarted by the simulator")
        lost = time.monotonic()
        self.broker.stop()
        self.broker.start()
        down = time.monotonic() - lost
        window = (self.settings.reconnect_min_s / 2, self.settings.reconnect_min_s)

        def back() -> list[float]:
            return [
                min(t for t in c if t > lost) - lost
                for g in groups
                for c in g.connects
                if any(t > lost for t in c)
            ]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(back()) < self.settings.devices:
            time.sleep(0.05)
        came = back()
        first_tries = [
            min(t for t in a if t > lost) - lost
            for g in groups
            for a in g.attempts
            if any(t > lost for t in a)
        ]
        return RestartResult(
            down_s=down, reconnected=len(came), devices=self.settings.devices, window_s=window,
            reconnect_p50_s=statistics.median(came) if came else 0.0, reconnect_max_s=max(came, default=0.0),
            attempt_max_s=max(first_tries, default=0.0), attempts_while_down=sum(t < down for t in first_tries),
        )  # fmt: skip

    def stored(self) -> tuple[int, int]:
        """Rows the server stored for this fleet's devices, and how many distinct records they are."""
        assert self._server_engine is not None
        ids = [d.dev.device_id for d in self.devices]
        with make_sessionmaker(self._server_engine)() as session:
            rows = session.scalar(
                select(func.count()).select_from(SyncInbox).where(SyncInbox.device_id.in_(ids))
            )
            distinct = session.scalar(
                select(func.count(func.distinct(SyncInbox.record_id))).where(SyncInbox.device_id.in_(ids))
            )
        return int(rows or 0), int(distinct or 0)

    def close(self) -> None:
        for child in self._ingest:
            if child.stdin is not None:
                child.stdin.close()
        for child in self._ingest:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        self._ingest.clear()
        if self.broker is not None:
            self.broker.stop()
        for d in self.devices:
            d.engine.dispose()
        if self._server_engine is not None:
            self._server_engine.dispose()


@contextmanager
def running_fleet(settings: FleetSettings, workdir: Path) -> Iterator[Fleet]:
    """A prepared fleet, closed at the end."""
    fleet = Fleet(settings, workdir)
    with ExitStack() as stack:
        stack.callback(fleet.close)
        fleet.prepare()
        yield fleet


def raise_fd_limit(need: int) -> None:
    """Each simulated device holds a socket and a database file: lift the soft open-files limit to fit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (min(need, hard) if hard != resource.RLIM_INFINITY else need, hard)
        )


def default_ingest_workers(broker: BrokerKind) -> int:
    """Two workers on a shared subscription with Mosquitto; one on amqtt (no shared subscriptions)."""
    return 1 if broker is BrokerKind.EMBEDDED else 2
