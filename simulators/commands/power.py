"""``patrol-sim power dock|undock|battery N|show``: drive the simulated charger folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from simulators.power import PowerSimulator

DEFAULT_ROOT = os.environ.get("PATROLKIT_SIM_POWER_DIR", "var/sim/power_supply")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "power", help="simulated charger and battery (a /sys/class/power_supply folder)"
    )
    parser.add_argument(
        "--root", type=Path, default=Path(DEFAULT_ROOT), help=f"folder (default {DEFAULT_ROOT})"
    )
    parser.add_argument("action", choices=["dock", "undock", "battery", "show"])
    parser.add_argument("percent", nargs="?", type=int, help="battery level for 'battery'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    sim = PowerSimulator(args.root)
    if args.action == "dock":
        sim.dock()
    elif args.action == "undock":
        sim.undock()
    elif args.action == "battery":
        if args.percent is None:
            print("battery needs a level 0..100")
            return 2
        sim.set_battery(args.percent)
    state = sim.state()
    print(f"on_charger={state.on_charger} battery={state.battery_percent}% status={state.battery_status}")
    return 0
