"""``patrol-sim camera``: serve the synthetic camera as YUV4MPEG2 over TCP (open it with ``tcp://host:port``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from core.process_stop import StopSignals
from core.structured_log import log_event
from simulators.camera import SyntheticCameraServer

log = logging.getLogger("simulators.camera")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("camera", help="synthetic camera: a moving scene with a frame counter")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    stop = StopSignals().install()
    server = SyntheticCameraServer(args.width, args.height, args.fps, args.host, args.port).start()
    print(f"synthetic camera at {server.url} ({args.width}x{args.height} @ {args.fps} fps); Ctrl-C ends")
    try:
        stop.requested.wait()
    finally:
        server.stop()
        log_event(log, "camera_sim.stopped", signal=stop.signal_name)
    return 0
