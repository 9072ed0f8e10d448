"""Benchmark: a fleet of simulated devices (``simulators.fleet``: the real sync sender, a device database each,
all in this process) drains through a Mosquitto of its own on a free port, into 2 ingest worker processes on a
shared subscription and a fresh PostgreSQL database, with a broker restart once half of the records are acked.
Baseline: ``bench/sync.py``'s single-device drain (one round, its own Mosquitto of the same configuration and
its own database, without admission by credit: a lone device drains fastest within its window alone), measured
before and after the fleet in the same run; the baseline is their mean.

Reports records/s, the p50/p99 ack latency (a record's first publish to the signed ack that frees it, every
record), memory per simulated device, the ingest's and the broker's peak RSS, how the devices came back after the
restart, whether every record was stored exactly once, and the server side's CPU per record (ingest, broker and
PostgreSQL processes) against the lone device's. Targets: records/s >= 0.8x the baseline, p99 ack < 2 s, all
reconnected within the jitter window, nothing lost or doubled. Last line: one JSON object.

Flags: ``--devices`` (1000), ``--records`` (100), ``--baseline-n`` (20000 records of the single device),
``--ingest-workers`` (2), ``--no-restart``, ``--no-credit`` (devices send within their window alone),
``--credit-target`` (0.5 s), ``--start-spread`` (1.0 s: each device first connects at a random time in the
first second, as a fleet comes back after an outage with the sender's reconnect jitter; 0: all within the same
few milliseconds, a start no fleet makes). Env: PATROLKIT_BENCH_DB_URL (a PostgreSQL server; default
``postgresql+psycopg://root@127.0.0.1:5432/test``: databases of this run only are created there and dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from simulators.fleet import (
    BrokerKind,
    FleetResult,
    FleetSettings,
    OwnMosquitto,
    raise_fd_limit,
    running_fleet,
)

BENCH = Path(__file__).resolve().parent
DEFAULT_DB = "postgresql+psycopg://root@127.0.0.1:5432/test"
TARGET_RATIO = 0.8
TARGET_P99_S = 2.0
CPU_LINE = "CPU seconds during the drain:"


def sync_bench(mqtt_url: str, n: int) -> ModuleType:
    """``bench/sync.py`` as a module, set (through its environment) to one round of ``n`` records at ``mqtt_url``;
    its ingest children inherit the same environment."""
    os.environ["PATROLKIT_BENCH_MQTT_URL"] = mqtt_url
    os.environ["PATROLKIT_BENCH_N"] = str(n)
    os.environ["PATROLKIT_BENCH_ROUNDS"] = "1"
    os.environ["PATROLKIT_BENCH_INGEST_WORKERS"] = "2"
    os.environ["PATROLKIT_BENCH_CREDIT"] = "0"  # the single device unmetered: its fastest drain, the harder baseline
    sys.path.insert(0, str(BENCH))
    import sync

    sys.modules.pop("sync", None)  # read again with the next environment
    return sync


SERVER_SIDE = ("ingest", "broker", "mosquitto", "postgres")  # CPU counted as the server's (not the devices')


@dataclass(frozen=True)
class Drain:
    """One single-device drain: records/s, and the server side's CPU seconds per record."""

    records_per_s: float
    server_cpu_per_record_s: float | None


def server_cpu_per_record(cpu_s: dict[str, float], records: int) -> float | None:
    """The CPU seconds per record of the ingest, broker and PostgreSQL processes (None when not measured)."""
    spent = [v for k, v in cpu_s.items() if k.rstrip("0123456789") in SERVER_SIDE]
    return sum(spent) / records if spent and records else None


def baseline_drain(tmp: Path, n: int) -> Drain:
    """``bench/sync.py``'s single-device end-to-end drain on a Mosquitto of its own."""
    broker = OwnMosquitto(tmp)
    broker.start()
    try:
        sync = sync_bench(broker.url, n)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), sync.own_database(tmp) as db_url:
            sync.run(tmp, db_url)
    finally:
        broker.stop()
    lines = out.getvalue().strip().splitlines()
    cpu_s: dict[str, float] = {}
    for line in lines[:-1]:
        print(f"  baseline | {line}")
        if line.strip().startswith(CPU_LINE):
            cpu_s = {k: float(v) for k, v in (kv.split("=") for kv in line.split(":", 1)[1].split(", "))}
    return Drain(float(json.loads(lines[-1])["value"]), server_cpu_per_record(cpu_s, n))


def fleet_run(tmp: Path, args: argparse.Namespace) -> FleetResult:
    sync = sync_bench("mqtt://127.0.0.1:1", 1)  # only for its own_database
    with sync.own_database(tmp) as db_url:
        settings = FleetSettings(
            db_url=db_url,
            devices=args.devices,
            records=args.records,
            broker=BrokerKind.MOSQUITTO,
            ingest_workers=args.ingest_workers,
            restart_broker=not args.no_restart,
            credit=not args.no_credit,
            credit_target_s=args.credit_target,
            start_spread_s=args.start_spread,
            timeout_s=900.0,
        )
        with running_fleet(settings, tmp) as fleet:
            return fleet.run()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--records", type=int, default=100, help="records per device")
    parser.add_argument("--baseline-n", type=int, default=20000, help="records of the single-device drain")
    parser.add_argument("--ingest-workers", type=int, default=2)
    parser.add_argument("--no-restart", action="store_true", help="no broker restart in the middle")
    parser.add_argument("--credit-target", type=float, default=0.5, help="the ingest's arrival-to-ack target (s)")
    parser.add_argument("--start-spread", type=float, default=1.0, help="devices first connect over this many seconds")
    parser.add_argument("--no-credit", action="store_true", help="no admission by credit: devices send within their window alone")
    args = parser.parse_args()
    os.environ.setdefault("PATROLKIT_BENCH_DB_URL", os.environ.get("PATROLKIT_TEST_DB_URL") or DEFAULT_DB)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("edge.sync.sender").setLevel(logging.WARNING)
    raise_fd_limit(4 * args.devices + 256)
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))

    before = baseline_drain(_dir(root / "baseline-before"), args.baseline_n)
    print(f"baseline before: single-device drain {before.records_per_s:.0f} records/s")
    result = fleet_run(_dir(root / "fleet"), args)
    for line in result.lines():
        print(line)
    after = baseline_drain(_dir(root / "baseline-after"), args.baseline_n)
    print(f"baseline after: single-device drain {after.records_per_s:.0f} records/s")
    baseline = statistics.mean([before.records_per_s, after.records_per_s])
    single = [d.server_cpu_per_record_s for d in (before, after) if d.server_cpu_per_record_s is not None]
    fleet_cpu = server_cpu_per_record(result.cpu_s, result.devices * result.records_per_device)
    if single and fleet_cpu is not None:
        mean_single = statistics.mean(single)
        print(
            f"server-side CPU per record (ingest, broker, PostgreSQL; the devices' own left out): fleet "
            f"{fleet_cpu * 1e6:.0f} us, single device {mean_single * 1e6:.0f} us: a fleet's record costs the "
            f"server {fleet_cpu / mean_single:.2f}x a lone device's"
        )
    ratio = result.records_per_s / baseline
    restart_ok = result.restart is None or result.restart.all_within_window
    ok = ratio >= TARGET_RATIO and result.ack_p99_s < TARGET_P99_S and result.exactly_once and restart_ok
    print(
        f"devices={args.devices} records={args.records} ingest_workers={args.ingest_workers} "
        f"restart={'yes' if result.restart else 'no'} credit={'no' if args.no_credit else 'yes'} "
        f"start_spread={args.start_spread:g}s: fleet {result.records_per_s:.0f} records/s vs single-device "
        f"{baseline:.0f} records/s = {ratio:.3f}x (target {TARGET_RATIO}x); p99 ack {result.ack_p99_s:.2f} s "
        f"(target < {TARGET_P99_S} s); exactly once: {result.exactly_once}; reconnects within window: {restart_ok}"
    )
    print(json.dumps({"bench": "fleet_sync", "value": round(result.records_per_s, 1), "unit": "records/s",
                      "baseline": round(baseline, 1), "ratio": round(ratio, 3), "target": TARGET_RATIO,
                      "pass": ok}))  # fmt: skip
    return 0


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
