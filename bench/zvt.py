"""Benchmark: a full card payment (Read Card + Authorisation) over a simulated 9600-baud 8N2 line.

The baseline is the line-time bound measured in the same run: bytes on the wire (both directions, ACKs
included) × 11 bits ÷ baud. Target: wall time ≤ 1.15 × that bound. Also prints the ECR's CPU time per
transaction. The last line is the JSON summary.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from core.clock import SystemClock
from hardware.zvt import commands as c
from hardware.zvt.link import Link
from hardware.zvt.session import ZvtSession
from hardware.zvt.transport import SerialChannel
from simulators.zvt.lines import PacedChannel, PtyLine
from simulators.zvt.terminal import SimulatedTerminal

BAUD = 9600
RUNS = 5
TARGET = 1.15


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        line = PtyLine(Path(tmp) / "zvt-bench")
        sim = SimulatedTerminal(
            line, SystemClock(), channel_wrapper=lambda ch: PacedChannel(ch, BAUD)
        ).start()
        channel = SerialChannel(line.path)
        clock = SystemClock()
        session = ZvtSession(Link(channel, clock), clock)
        session.run(c.status_enquiry())  # warm-up (opens the line)
        ratios, walls, bounds, cpus = [], [], [], []
        for _ in range(RUNS):
            stats = session.link.stats
            before = stats.bytes_written + stats.bytes_read
            cpu0, t0 = time.thread_time(), time.perf_counter()
            session.run(c.read_card())
            out = session.run(c.authorisation(500000, card_hash=True), lambda info: c.ACK_APDU)
            wall = time.perf_counter() - t0
            cpu = time.thread_time() - cpu0
            assert out.completion is not None and out.last_status is not None and out.last_status.approved
            nbytes = stats.bytes_written + stats.bytes_read - before
            bound = nbytes * 11 / BAUD
            walls.append(wall)
            bounds.append(bound)
            cpus.append(cpu)
            ratios.append(wall / bound)
            print(
                f"payment: {nbytes} bytes, line bound {bound * 1000:.1f} ms, wall {wall * 1000:.1f} ms, "
                f"ratio {wall / bound:.3f}, ECR CPU {cpu * 1000:.2f} ms"
            )
        channel.close()
        sim.stop()
        line.close()
    ratio = statistics.median(ratios)
    print(f"ECR CPU per transaction (median): {statistics.median(cpus) * 1000:.2f} ms")
    print(
        json.dumps(
            {
                "bench": "zvt_payment_9600",
                "value": round(statistics.median(walls), 4),
                "unit": "s",
                "baseline": round(statistics.median(bounds), 4),
                "ratio": round(ratio, 3),
                "target": TARGET,
                "pass": ratio <= TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
