"""``patrol-edge recorder status``: the recorder's state. There is deliberately no stop, pause, mute or delete."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.config import load_edge_config
from edge.recorder.recorder import read_status


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("recorder", help="body-camera recorder (status only)")
    sub = parser.add_subparsers(dest="recorder_command", required=True)
    status = sub.add_parser("status", help="recording state, current segment, storage left")
    status.add_argument(
        "--dir", type=Path, default=None, help="recording directory (default <data_dir>/video)"
    )
    status.set_defaults(handler=show_status)


def show_status(args: argparse.Namespace) -> int:
    directory = args.dir or load_edge_config(args.config).device.data_dir / "video"
    status = read_status(directory)
    if status is None:
        print(f"no recorder status in {directory}")
        return 1
    print(json.dumps(status, indent=2))
    if status.get("storage_low"):
        print(f"WARNING: less than 2 h of recording space left ({status.get('hours_left')} h)")
    return 0
