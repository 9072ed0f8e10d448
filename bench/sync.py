"""Benchmark: drain N pre-filled outbox records end to end (device SQLite → MQTT → ingest → server DB COMMIT →
signed ack → device UPDATE) vs a raw paho QoS 1 publish loop of N single-record messages to the same broker.

Env: PATROLKIT_BENCH_N (20000), PATROLKIT_BENCH_MQTT_URL (mqtt://127.0.0.1:1883), PATROLKIT_BENCH_DB_URL (a
PostgreSQL server URL, e.g. ``postgresql+psycopg://root@127.0.0.1:5432/test``: the bench creates its OWN
database there and drops it at the end; default PATROLKIT_TEST_DB_URL, else SQLite in a temp dir),
PATROLKIT_BENCH_WINDOW (12000), PATROLKIT_BENCH_BATCH (500), PATROLKIT_BENCH_INGEST_WORKERS (2 processes in one
shared subscription), PATROLKIT_BENCH_ROUNDS (5), PATROLKIT_BENCH_CREDIT (1; 0: no admission by credit, the
sender's window alone), PATROLKIT_BENCH_PROFILE (a directory: write
cProfile stats of the sender and ingest threads there). Last line: one JSON object.

Each round times the raw loop and then the end-to-end drain (a fresh device and device database each round,
the same server database and ingest workers), so both meet the same machine load; the result is the median
of each over the rounds. On a shared 2-core machine the raw rate alone moved from 12 000 to 19 600 msg/s
within minutes: one pair of runs decides little.
"""

from __future__ import annotations

import base64
import cProfile
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sync"))

from sync_harness import fill_outbox

from core.sync.broker_url import parse_broker_url
from core.sync.envelope import encode_batch_message
from core.sync.signing import KeyRing, Signer, Verifier
from edge.db.base import make_engine as edge_engine
from edge.db.base import make_sessionmaker as edge_sessions
from edge.db.migrate import upgrade as edge_upgrade
from edge.sync.credit import CreditSettings
from edge.sync.outbox import OutboxContent, seal_pending, stats
from edge.sync.sender import SenderSettings, SyncSender
from server.commands.device import ProvisionedDevice, add_device
from server.db.base import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server.db.sync import SyncInbox
from server.ingest.admission import AdmissionSettings
from server.ingest.worker import IngestSettings, IngestWorker

N = int(os.environ.get("PATROLKIT_BENCH_N", "20000"))
URL = os.environ.get("PATROLKIT_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
WINDOW = int(os.environ.get("PATROLKIT_BENCH_WINDOW", "12000"))
BATCH = int(os.environ.get("PATROLKIT_BENCH_BATCH", "500"))
PROFILE = os.environ.get("PATROLKIT_BENCH_PROFILE")
ROUNDS = int(os.environ.get("PATROLKIT_BENCH_ROUNDS", "5"))
WORKERS = int(os.environ.get("PATROLKIT_BENCH_INGEST_WORKERS", "2"))
CREDIT = os.environ.get("PATROLKIT_BENCH_CREDIT", "1") != "0"


@contextmanager
def own_database(tmp: Path) -> Iterator[str]:
    """A database of this run only: a fresh PostgreSQL database (dropped afterwards) or a temp SQLite file."""
    server_url = os.environ.get("PATROLKIT_BENCH_DB_URL") or os.environ.get("PATROLKIT_TEST_DB_URL")
    if not server_url or not server_url.startswith("postgresql"):
        yield f"sqlite:///{tmp / 'server.db'}"
        return
    import psycopg

    base = make_url(server_url)
    name = f"pk_bench_{uuid.uuid4().hex[:12]}"
    admin = (
        f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} "
        f"dbname={base.database or 'postgres'}"
    )
    if base.password:
        admin += f" password={base.password}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def raw_publish_rate(payloads: list[bytes]) -> float:
    """Baseline: N single-record messages, QoS 1, as fast as PUBACKs come back (TCP_NODELAY, default inflight)."""
    addr = parse_broker_url(URL)
    done = threading.Event()
    acked = [0]

    def on_publish(*_a: object) -> None:
        acked[0] += 1
        if acked[0] == len(payloads):
            done.set()

    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{os.getpid()}", protocol=mqtt.MQTTv311
    )
    c.username_pw_set("bench-raw")
    c.on_socket_open = lambda _c, _u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    c.on_publish = on_publish
    c.connect(addr.host, addr.port)
    c.loop_start()
    t0 = time.perf_counter()
    for p in payloads:
        c.publish(f"bench/raw/{os.getpid()}", p, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return len(payloads) / elapsed


def profiled(fn: Callable[[], None], name: str) -> Callable[[], None]:
    if not PROFILE:
        return fn

    def run() -> None:
        prof = cProfile.Profile()
        try:
            prof.runcall(fn)
        finally:
            Path(PROFILE).mkdir(parents=True, exist_ok=True)
            prof.dump_stats(str(Path(PROFILE) / f"{name}.prof"))

    return run


def ingest_child(db_url: str, key_file: str, group: str) -> int:
    """``sync.py --ingest-child DB KEYFILE GROUP``: one ingest worker (in shared subscription GROUP if not
    empty); prints ``ready`` once subscribed, stops at EOF on stdin."""
    engine = make_engine(db_url)
    settings = IngestSettings(
        mqtt_url=URL, client_id=f"bench-ingest-{os.getpid()}", shared_group=group or None,
        admission=AdmissionSettings(enabled=CREDIT),
    )
    worker = IngestWorker(settings, make_sessionmaker(engine), Signer.from_b64(Path(key_file).read_text()))
    worker._run = profiled(worker._run, f"ingest-{os.getpid()}")  # type: ignore[method-assign]
    worker.start()
    if not worker.wait_subscribed(20):
        return 1
    print("ready", flush=True)
    sys.stdin.read()
    worker.stop()
    engine.dispose()
    return 0


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--ingest-child":
        return ingest_child(sys.argv[2], sys.argv[3], sys.argv[4])
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    with own_database(tmp) as db_url:
        return run(tmp, db_url)


@dataclass
class Round:
    """One round: the raw loop, then the end-to-end drain of a fresh device database with N records."""

    raw: float
    e2e: float
    elapsed: float
    stored: int
    pending: int
    refused: int  # acked as conflict or rejected: must be 0 (each record is new and valid)
    resends: int
    cpu: dict[str, float]


def run(tmp: Path, db_url: str) -> int:
    upgrade(db_url)
    server_engine = make_engine(db_url)
    server = make_sessionmaker(server_engine)
    server_signer = Signer.generate()
    with server() as s, s.begin():  # every round's device exists before the workers load their registry
        devs = [add_device(s, f"PD-bench-{os.getpid()}-{r}", datetime.now(UTC)) for r in range(ROUNDS)]

    # The ingest runs in its own process, as on the server (the device is another machine): one Python
    # process for both would make them fight over one GIL.
    key_file = tmp / "server.key"
    key_file.write_text(base64.b64encode(server_signer.private_raw()).decode())
    group = f"bench{os.getpid()}" if WORKERS > 1 else ""
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--ingest-child", db_url, str(key_file), group],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("ingest child did not start")
    rounds: list[Round] = []
    try:
        for r, dev in enumerate(devs):
            rounds.append(one_round(tmp / f"round{r}", dev, server, server_signer, [c.pid for c in children]))
            got = rounds[-1]
            print(
                f"round {r + 1}: end-to-end {got.e2e:.0f} rec/s in {got.elapsed:.2f} s; raw paho QoS1 loop "
                f"{got.raw:.0f} msg/s; ratio {got.e2e / got.raw:.3f}; stored={got.stored} "
                f"device_pending={got.pending} refused={got.refused} resends={got.resends}"
            )
            if got.cpu:
                print(
                    "  CPU seconds during the drain: "
                    + ", ".join(f"{k}={v}" for k, v in got.cpu.items() if v)
                )
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
        for child in children:
            child.wait(30)
    server_engine.dispose()
    value = statistics.median(g.e2e for g in rounds)
    baseline = statistics.median(g.raw for g in rounds)
    durability = _durability(db_url)
    print(
        f"N={N} rounds={ROUNDS} window={WINDOW} batch={BATCH} ingest_workers={WORKERS} broker={URL} "
        f"server_db={db_url.split('@')[-1].split('/')[0]}"
    )
    print(f"durability: device SQLite WAL synchronous=FULL; server {durability}; TCP_NODELAY on both clients")
    print(
        f"median of {ROUNDS} interleaved rounds: end-to-end {value:.0f} rec/s; raw paho QoS1 loop {baseline:.0f} msg/s"
    )
    ok = all(g.stored == N and g.pending == 0 and g.refused == 0 for g in rounds)
    print(json.dumps({"bench": "sync_end_to_end", "value": round(value, 1), "unit": "records/s",
                      "baseline": round(baseline, 1), "ratio": round(value / baseline, 3), "target": 1.0,
                      "pass": ok and value / baseline >= 1.0}))  # fmt: skip
    return 0


def one_round(
    tmp: Path,
    dev: ProvisionedDevice,
    server: sessionmaker[Session],
    server_signer: Signer,
    workers: list[int],
) -> Round:
    """Fill and seal a fresh device database, time the raw loop on its payloads, then time the drain."""
    device_url = f"sqlite:///{tmp / 'device.db'}"
    edge_upgrade(device_url)
    device_engine = edge_engine(device_url)
    device = edge_sessions(device_engine)
    signer = Signer.from_b64(dev.private_key_b64)
    fill_outbox(device, N, prefix=f"{dev.device_id}-")  # protocol numbers of this round only
    with device() as s, s.begin():
        while seal_pending(s, dev.device_id, signer, limit=5000):
            pass
    with device() as s:
        payloads = list(s.scalars(select(OutboxContent.payload).order_by(OutboxContent.seq)))
    raw = raw_publish_rate([encode_batch_message(signer, [p or b""]) for p in payloads])

    sender = SyncSender(SenderSettings(mqtt_url=URL, device_id=dev.device_id, window=WINDOW, batch=BATCH,
                                         credit=CreditSettings(enabled=CREDIT)),
                        device, signer, KeyRing([Verifier(server_signer.public_raw())]))  # fmt: skip
    sender.run = profiled(sender.run, f"sender-{dev.device_id}")  # type: ignore[method-assign]
    cpu0 = _cpu_by_process(workers)
    t0 = time.perf_counter()
    sender.start()
    while sender.acked < N:
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    cpu1 = _cpu_by_process(workers)
    sender.stop()
    with device() as s:
        left = stats(s)
    device_engine.dispose()
    with server() as s:
        stored = len(s.scalars(select(SyncInbox.seq).where(SyncInbox.device_id == dev.device_id)).all())
    cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in cpu1.items()}
    return Round(raw, N / elapsed, elapsed, stored, left.pending, left.rejected, sender.resends, cpu)


def _cpu_by_process(children: list[int]) -> dict[str, float]:
    """CPU seconds (user+system) so far of this process (device), each ingest child, Mosquitto and the
    PostgreSQL processes, from ``/proc`` (empty where there is none)."""
    tick = os.sysconf("SC_CLK_TCK")
    got: dict[str, float] = {}

    def spent(pid: int | str) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        got["device"] = spent(os.getpid())
        for n, pid in enumerate(children):
            got[f"ingest{n}"] = spent(pid)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    comm = (entry / "comm").read_text().strip()
                    if comm in ("mosquitto", "postgres"):
                        got[comm] = got.get(comm, 0.0) + spent(entry.name)
                except OSError:
                    continue
    except OSError:
        return {}
    return got


def _durability(db_url: str) -> str:
    if not db_url.startswith("postgresql"):
        return "SQLite WAL synchronous=FULL"
    import psycopg

    u = make_url(db_url)
    conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    with psycopg.connect(conninfo) as conn:
        got: dict[str, Any] = {}
        for name in ("synchronous_commit", "fsync", "wal_sync_method"):
            row = conn.execute(f"SHOW {name}").fetchone()
            got[name] = row[0] if row else "?"
    return "PostgreSQL " + ", ".join(f"{k}={v}" for k, v in got.items())


if __name__ == "__main__":
    raise SystemExit(main())
