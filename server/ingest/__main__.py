"""``python -m server.ingest``: run ingest workers alone against a database and broker (tests, scaling out);
with ``--metrics-port`` their metrics (``server.ingest.metrics``) are served for Prometheus on that port."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from core.sync.signing import Signer
from server.db.base import make_engine, make_sessionmaker
from server.ingest.admission import AdmissionSettings
from server.ingest.metrics import IngestMetrics
from server.ingest.supervisor import IngestSupervisor
from server.ingest.worker import IngestSettings, start_ingest_workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.ingest", description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--key-file", required=True, help="server private key, base64 raw Ed25519")
    parser.add_argument("--client-id", default="ingest")
    parser.add_argument("--username", default="ingest-svc")
    parser.add_argument("--password", default=None)
    parser.add_argument(
        "--shared-group", default=None, help="e.g. 'ingest' for $share/ingest/... (not amqtt)"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--gap-timeout", type=float, default=30.0)
    parser.add_argument("--tls-ca", default=None, help="with mqtts://: CA certificate of the broker")
    parser.add_argument("--tls-cert", default=None, help="with mqtts://: the ingest-svc client certificate")
    parser.add_argument("--tls-key", default=None, help="with mqtts://: its private key")
    parser.add_argument("--no-credit", action="store_true", help="do not answer devices' credit asks")
    parser.add_argument("--credit-target", type=float, default=0.5, help="arrival-to-ack seconds the budget aims at")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics port")
    args = parser.parse_args(argv)
    engine = make_engine(args.db)
    settings = IngestSettings(
        mqtt_url=args.mqtt_url,
        client_id=args.client_id,
        username=args.username,
        password=args.password,
        shared_group=args.shared_group,
        gap_timeout_s=args.gap_timeout,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        admission=AdmissionSettings(enabled=not args.no_credit, target_s=args.credit_target),
    )
    metrics = None
    if args.metrics_port is not None:
        registry = CollectorRegistry(auto_describe=True)
        metrics = IngestMetrics(registry)
        start_http_server(args.metrics_port, args.metrics_host, registry)
    workers = start_ingest_workers(
        settings,
        make_sessionmaker(engine),
        Signer.from_b64(Path(args.key_file).read_text()),
        args.workers,
        metrics=metrics,
    )
    supervisor = IngestSupervisor(workers).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    supervisor.stop()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
