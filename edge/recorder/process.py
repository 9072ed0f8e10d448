"""Entry point of the recorder process (``python -m edge.recorder.process ...``), started by the supervisor.

It has no control input at all: it records from start until the system terminates it (SIGTERM closes the
segment cleanly; SIGKILL or power loss is repaired at the next start).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from core.structured_log import configure_logging
from edge.recorder.position import no_gps, receiver_source
from edge.recorder.recorder import Recorder, RecorderSettings
from edge.recorder.recovery import parse_segment_name
from edge.recorder.segment_writer import EncoderSettings
from edge.recorder.signer import SegmentSigner
from edge.recorder.storage_policy import StoragePolicy
from hardware.camera import CaptureFormat
from hardware.gps import GpsReceiver


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="patrol-recorder", description="Body-camera recorder process (no controls)."
    )
    p.add_argument("--dir", type=Path, required=True, help="recording directory on persistent storage")
    p.add_argument("--camera", required=True, help="V4L2 index or path, file or URL")
    p.add_argument("--device-id", required=True)
    p.add_argument("--key-file", type=Path, required=True, help="the device's Ed25519 PEM key")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--segment-seconds", type=int, default=60)
    p.add_argument("--encoder", default="libx264")
    p.add_argument("--badge", default="")
    p.add_argument(
        "--database-url", default=None, help="sqlite:/// URL of the device database (index + outbox)"
    )
    p.add_argument("--warn-hours", type=float, default=2.0)
    p.add_argument("--reserve-mb", type=int, default=64)
    p.add_argument("--gps", default=None, help="NMEA receiver URL (serial port, pty path); none = no GPS")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    configure_logging(args.log_level)
    from edge.identity import load_identity

    identity = load_identity(args.device_id, args.key_file)
    signer = SegmentSigner(identity.device_id, identity.private_key, identity.kid)
    settings = RecorderSettings(
        directory=args.dir,
        camera=args.camera,
        capture=CaptureFormat(args.width, args.height, args.fps),
        segment_seconds=args.segment_seconds,
        encoder=EncoderSettings(codec=args.encoder),
        badge=args.badge,
    )
    index = None
    if args.database_url:
        from edge.db.base import make_engine, make_sessionmaker
        from edge.recorder.index import DatabaseIndex

        index = DatabaseIndex(make_sessionmaker(make_engine(args.database_url)), identity.device_id)
    storage = StoragePolicy(args.dir, warn_hours=args.warn_hours, reserve_bytes=args.reserve_mb * 1024 * 1024)
    gps = GpsReceiver(args.gps).start() if args.gps else None

    source = receiver_source(gps) if gps is not None else no_gps
    recorder = Recorder(settings, signer, index=index, storage=storage, gps=source)
    if index is not None:
        files = {p[0]: path.name for path in args.dir.glob("*.mp4") if (p := parse_segment_name(path.name))}
        index.reconcile(recorder.journal, files)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        recorder.run(stop)
    finally:
        if gps is not None:
            gps.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
