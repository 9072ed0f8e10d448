"""Benchmark: drain N pre-filled outbox records end to end (device SQLite → MQTT → ingest → server DB COMMIT →
signed ack → device UPDATE) vs a raw paho QoS 1 publish loop of N single-record messages to the same broker.

Env: PATROLKIT_BENCH_N (20000), PATROLKIT_BENCH_MQTT_URL (mqtt://127.0.0.1:1883),
PATROLKIT_BENCH_DB_URL (a DEDICATED empty server DB; default SQLite in a temp dir), PATROLKIT_BENCH_WINDOW (1000),
PATROLKIT_BENCH_BATCH (100). Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sync"))

from sync_harness import fill_outbox

from core.sync.broker_url import parse_broker_url
from core.sync.envelope import SignedRecord, encode_up_message
from core.sync.signing import KeyRing, Signer, Verifier
from edge.db.base import make_engine as edge_engine
from edge.db.base import make_sessionmaker as edge_sessions
from edge.db.migrate import upgrade as edge_upgrade
from edge.sync.outbox import OutboxRecord, seal_pending, stats
from edge.sync.sender import SenderSettings, SyncSender
from server.commands.device import add_device
from server.db.base import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server.ingest.worker import IngestSettings, IngestWorker

N = int(os.environ.get("PATROLKIT_BENCH_N", "20000"))
URL = os.environ.get("PATROLKIT_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
WINDOW = int(os.environ.get("PATROLKIT_BENCH_WINDOW", "1000"))
BATCH = int(os.environ.get("PATROLKIT_BENCH_BATCH", "100"))


def raw_publish_rate(payloads: list[bytes]) -> float:
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
    c.on_socket_open = lambda _c, _u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
    c.on_publish = on_publish
    c.connect(addr.host, addr.port)
    c.loop_start()
    t0 = time.perf_counter()
    for p in payloads:
        c.publish("bench/raw", p, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return len(payloads) / elapsed


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    db_url = os.environ.get("PATROLKIT_BENCH_DB_URL", f"sqlite:///{tmp / 'server.db'}")
    upgrade(db_url)
    server = make_sessionmaker(make_engine(db_url))
    device_url = f"sqlite:///{tmp / 'device.db'}"
    edge_upgrade(device_url)
    device = edge_sessions(edge_engine(device_url))
    server_signer = Signer.generate()
    with server() as s, s.begin():
        dev = add_device(s, f"PD-bench-{os.getpid()}", datetime.now(UTC))
    signer = Signer.from_b64(dev.private_key_b64)
    fill_outbox(device, N)
    with device() as s, s.begin():
        while seal_pending(s, dev.device_id, signer, limit=5000):
            pass
    with device() as s:
        rows = s.query(OutboxRecord.payload, OutboxRecord.sig, OutboxRecord.kid).all()
    single = [encode_up_message([SignedRecord(p or b"", g or b"", k or "")]) for p, g, k in rows]
    baseline = raw_publish_rate(single)

    worker = IngestWorker(IngestSettings(mqtt_url=URL, client_id=f"bench-ingest-{os.getpid()}", shared_group=None),
                          server, server_signer)  # fmt: skip
    worker.start()
    time.sleep(0.5)
    sender = SyncSender(SenderSettings(mqtt_url=URL, device_id=dev.device_id, window=WINDOW, batch=BATCH),
                        device, signer, KeyRing([Verifier(server_signer.public_raw())]))  # fmt: skip
    t0 = time.perf_counter()
    sender.start()
    while True:
        with device() as s:
            if stats(s).pending == 0:
                break
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    sender.stop()
    worker.stop()
    value = N / elapsed
    print(f"N={N} window={WINDOW} batch={BATCH} broker={URL} server_db={db_url.split('@')[-1].split(':')[0]}")
    print("device SQLite: WAL, synchronous=FULL; server: SQLite WAL synchronous=FULL or PostgreSQL default "
          "(synchronous_commit=on); TCP_NODELAY on both clients")  # fmt: skip
    print(f"end-to-end {value:.0f} rec/s in {elapsed:.2f} s; raw paho QoS1 loop {baseline:.0f} msg/s")
    print(json.dumps({"bench": "sync_end_to_end", "value": round(value, 1), "unit": "records/s",
                      "baseline": round(baseline, 1), "ratio": round(value / baseline, 3), "target": 1.0,
                      "pass": value / baseline >= 1.0}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
