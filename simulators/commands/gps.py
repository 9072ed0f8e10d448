"""``patrol-sim gps --pty PATH``: a simulated GPS receiver sending NMEA on a pty (linked at PATH)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from core.process_stop import StopSignals
from core.structured_log import log_event
from simulators.gps import GpsSimulator, Track

log = logging.getLogger("simulators.gps")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("gps", help="simulated GPS receiver: NMEA RMC/GGA on a pty")
    parser.add_argument(
        "--pty", type=Path, default=Path("var/sim/gps"), help="symlink to the pty (default var/sim/gps)"
    )
    parser.add_argument("--lat", type=float, default=43.2389, help="start latitude (default Almaty)")
    parser.add_argument("--lon", type=float, default=76.8897, help="start longitude")
    parser.add_argument("--speed", type=float, default=10.0, help="metres per second")
    parser.add_argument("--course", type=float, default=45.0, help="degrees from north")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between fixes")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    stop = StopSignals().install()
    sim = GpsSimulator(Track(args.lat, args.lon, args.speed, args.course), args.interval, args.pty).start()
    print(f"GPS simulator on {sim.device}, linked at {sim.path}; open it with gps.url = {str(sim.path)!r}")
    try:
        stop.requested.wait()
    finally:
        sim.stop()
        log_event(log, "gps_sim.stopped", signal=stop.signal_name)
    return 0
