"""``patrol-sim fleet``: N simulated devices (the real sync sender, a device database each) drain M records each
through a broker into ingest workers and a server database; prints records/s, ack latency and memory."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

from simulators.fleet import (
    BrokerKind,
    Drive,
    FleetSettings,
    default_ingest_workers,
    raise_fd_limit,
    running_fleet,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("fleet", help="many simulated devices syncing through a real broker")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--records", type=int, default=10, help="records per device")
    parser.add_argument(
        "--broker",
        choices=[k.value for k in BrokerKind],
        default=None,
        help="embedded (amqtt in this process; the default), mosquitto (started here on a free port), or "
        "external (--mqtt-url)",
    )
    parser.add_argument("--mqtt-url", default=None, help="an external broker (anonymous or device accounts)")
    parser.add_argument("--db", default=None, help="server database URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--ingest-workers", type=int, default=None, help="ingest processes (default 1 on amqtt, else 2)"
    )
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ack-timeout", type=float, default=30.0, help="the sender's, seconds")
    parser.add_argument("--restart-broker", action="store_true", help="restart the broker once half is acked")
    parser.add_argument(
        "--drive",
        choices=[d.value for d in Drive],
        default=Drive.SHARED.value,
        help="threads: each sender its own thread, as on a device; shared: a few threads step them all",
    )
    parser.add_argument("--per-process", type=int, default=150, help="devices per device process")
    parser.add_argument(
        "--idle-step", type=float, default=5.0, help="shared drive: seconds between steps of an idle sender"
    )
    parser.add_argument(
        "--start-spread", type=float, default=0.0,
        help="shared drive: devices first connect at random over this many seconds (0: all at once)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="device databases go here (default: temp)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    kind = (
        BrokerKind(args.broker)
        if args.broker
        else (BrokerKind.EXTERNAL if args.mqtt_url else BrokerKind.EMBEDDED)
    )
    settings = FleetSettings(
        devices=args.devices,
        records=args.records,
        broker=kind,
        mqtt_url=args.mqtt_url,
        db_url=args.db,
        ingest_workers=args.ingest_workers or default_ingest_workers(kind),
        window=args.window,
        batch=args.batch,
        restart_broker=args.restart_broker,
        ack_timeout_s=args.ack_timeout,
        drive=Drive(args.drive),
        per_process=args.per_process,
        idle_step_s=args.idle_step,
        start_spread_s=args.start_spread,
    )
    logging.getLogger("edge.sync.sender").setLevel(logging.WARNING)  # a line per device and connect
    raise_fd_limit(4 * args.devices + 256)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="patrol-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with running_fleet(settings, workdir) as fleet:
        result = fleet.run()
    for line in result.lines():
        print(line)
    return 0 if result.exactly_once else 1
