"""``python -m simulators.fleet_devices SPEC.json``: one process of a simulated fleet, running a slice of its
devices (``simulators.fleet.TimedSender`` on each device's database). Prints ``ready`` once the senders are
made and booted, starts them at ``go`` on stdin, then prints a JSON progress line (acked records and connect times per
device) every ``progress_s``; at end of input it stops the senders and prints a final JSON line with every
record's ack latency, the resends and its memory.

Stepped by shared drivers (``spec["shared"]``), the senders' paho clients are driven by one network thread
(``simulators.fleet_net``) instead of a thread each. Else each sender runs as on a device, and a process holds
a few hundred devices at most: paho waits on ``select()``, which takes no descriptor above 1023, and each
device holds about six (its socket, paho's wake-up pair, its database and WAL files)."""

from __future__ import annotations

import base64
import json
import random
import sys
import threading
import time
from pathlib import Path

from core.sync.signing import KeyRing, Signer, Verifier
from edge.db.base import make_engine, make_sessionmaker
from edge.sync.credit import CreditSettings
from edge.sync.sender import SenderSettings
from simulators.fleet import Driver, TimedSender, cpu_seconds, rss_kib, share_compiled_statements
from simulators.fleet_net import NetLoop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    keys = KeyRing([Verifier(base64.b64decode(spec["server_public_b64"]))])
    senders: list[TimedSender] = []
    engines = share_compiled_statements([make_engine(f"sqlite:///{dev['db']}") for dev in spec["devices"]])
    for dev, engine in zip(spec["devices"], engines, strict=True):
        settings = SenderSettings(
            mqtt_url=spec["mqtt_url"], device_id=dev["device_id"], username=dev["username"],
            password=dev["password"], window=spec["window"], batch=spec["batch"],
            reconnect_min_s=spec["reconnect_min_s"], ack_timeout_s=spec["ack_timeout_s"],
            credit=CreditSettings(enabled=spec["credit"]),
        )  # fmt: skip
        senders.append(
            TimedSender(
                settings,
                make_sessionmaker(engine),
                Signer.from_b64(dev["private_key_b64"]),
                keys,
                shared=spec["shared"],
            )
        )
    driver = Driver(senders, spec["drivers"], spec["idle_step_s"]) if spec["shared"] else None
    net = NetLoop() if spec["shared"] else None
    if net is not None:
        spread = random.Random()
        for sender in senders:
            sender.attach(net, spread.uniform(0.0, spec.get("start_spread_s", 0.0)))
    rss_before = rss_kib()  # before boot: each device's open database counts in its memory
    for sender in senders:
        sender.boot()
    peak = [rss_kib()]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    for sender in senders:
        sender.start()
    if net is not None:
        net.start()
    if driver is not None:
        driver.start()
    done = threading.Event()
    printing = threading.Lock()  # a line longer than the pipe's buffer must not interleave with another

    def report() -> None:
        while not done.wait(spec["progress_s"]):
            peak[0] = max(peak[0], rss_kib())
            line = {
                "acked": [s.acked for s in senders],
                "connects": [s.connects[-3:] for s in senders],
                "attempts": [s.attempts[-3:] for s in senders],
            }
            with printing:
                print(json.dumps(line), flush=True)

    reporter = threading.Thread(target=report, name="fleet-progress", daemon=True)
    reporter.start()
    sys.stdin.read()
    done.set()
    reporter.join(5)
    peak[0] = max(peak[0], rss_kib())
    if driver is not None:
        driver.stop()
    if net is not None:
        net.closing()
    for sender in senders:
        sender.stop()
    if net is not None:
        net.stop()
    for engine in engines:
        engine.dispose()
    final = {
        "final": True,
        "acked": [s.acked for s in senders],
        "connects": [s.connects for s in senders],
        "latencies": [v for s in senders for v in s.latencies],
        "resends": sum(s.resends for s in senders),
        "rss_before_kib": rss_before,
        "rss_peak_kib": peak[0],
        "cpu_s": cpu_seconds(),
        "at": time.monotonic(),
    }
    with printing:
        print(json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
