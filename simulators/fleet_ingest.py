"""``python -m simulators.fleet_ingest``: the ingest of a simulated fleet in a process of its own, started through
``server.ingest``'s entry points (``start_ingest_workers`` and ``IngestSupervisor``); prints ``ready`` once its
worker has subscribed and stops at end of input. Each ``report`` line on its input is answered with one JSON
line: its arrival-to-ack histogram, ``{"ack_le": [[upper bound in s, messages at or under it], ...]}``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from core.sync.signing import Signer
from server.db.base import make_engine, make_sessionmaker
from server.ingest.admission import AdmissionSettings
from server.ingest.metrics import IngestMetrics
from server.ingest.supervisor import IngestSupervisor
from server.ingest.worker import IngestSettings, start_ingest_workers

FINE_ACK_BUCKETS = (*(round(0.1 * n, 1) for n in range(1, 51)), 10.0, 30.0, 60.0)  # 0.1 s steps to 5 s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.fleet_ingest", description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--key-file", required=True, help="server private key, base64 raw Ed25519")
    parser.add_argument("--password", default=None, help="of the ingest-svc account")
    parser.add_argument("--client-id", default="fleet-ingest")
    parser.add_argument("--shared-group", default="", help="empty: no shared subscription (amqtt)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-credit", action="store_true", help="do not answer the devices' credit asks")
    parser.add_argument("--credit-target", type=float, default=0.5, help="arrival-to-ack seconds the budget aims at")
    args = parser.parse_args(argv)
    engine = make_engine(args.db)
    settings = IngestSettings(
        mqtt_url=args.mqtt_url,
        client_id=args.client_id,
        password=args.password,
        shared_group=args.shared_group or None,
        admission=AdmissionSettings(enabled=not args.no_credit, target_s=args.credit_target),
    )
    registry = CollectorRegistry()
    workers = start_ingest_workers(
        settings, make_sessionmaker(engine), Signer.from_b64(Path(args.key_file).read_text()), args.workers,
        metrics=IngestMetrics(registry, FINE_ACK_BUCKETS),
    )
    supervisor = IngestSupervisor(workers).start()
    try:
        if not all(w.wait_subscribed(30) for w in workers):
            print("not subscribed", flush=True)
            return 1
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "report":
                print(json.dumps({"ack_le": ack_histogram(registry)}), flush=True)
    finally:
        supervisor.stop()
        engine.dispose()
    return 0


def ack_histogram(registry: CollectorRegistry) -> list[list[float]]:
    """The cumulative buckets of the arrival-to-ack histogram (the last bound is +Inf, given as 1e9)."""
    buckets = [
        [float(sample.labels["le"]), sample.value]
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "patrolkit_ingest_ack_latency_seconds_bucket"
    ]
    return [[1e9 if math.isinf(le) else le, n] for le, n in sorted(buckets)]


if __name__ == "__main__":
    raise SystemExit(main())
