"""Entry point of the recorder process (``python -m edge.recorder.process ...``), started by the supervisor.

It has no control input at all: it records from start until the system terminates it (SIGTERM closes the
segment cleanly; SIGKILL or power loss is repaired at the next start).
Before it touches the folder it takes the folder's lock: a second recorder refuses to start (exit code 75) with
an error naming the pid that records there. Started by a supervisor (``patrol-edge run``), it ends with it: the
kernel sends it SIGHUP when the supervisor dies, and the gap until the next supervisor's recorder starts is
recorded with the cause ``device_process_died``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from core.process_stop import end_with_parent
from core.structured_log import configure_logging, log_event
from edge.folder_lock import FolderLock, FolderLocked
from edge.recorder.journal import DEVICE_PROCESS_DIED, RECORDER_STOPPED

if TYPE_CHECKING:
    from edge.recorder.recorder import Recorder

log = logging.getLogger("edge.recorder")
LOCK_FILE = "recorder.lock"
EXIT_FOLDER_LOCKED = 75  # EX_TEMPFAIL: another recorder owns the folder; try again once it has ended


PARENT_DEATH_SIGNAL = signal.SIGHUP  # what the kernel sends when the supervising device process dies


class StopRequest:
    """SIGTERM or SIGINT ends the recording. Installed before the heavy imports, so a stop during start is a clean
    stop too. The supervisor's death is told apart, for the cause of the gap the next start records: the kernel
    signals it with ``PARENT_DEATH_SIGNAL``, not SIGTERM, because its first signal can come while ``getppid()``
    still names the dying supervisor (it ends thread by thread). A stop signal once this process has a new parent
    counts as the supervisor's death too. No I/O in the handler."""

    def __init__(self) -> None:
        self.parent: int | None = None
        self.event = threading.Event()
        self.signal: str | None = None
        self.cause = RECORDER_STOPPED
        self.recorder: Recorder | None = None  # told the cause once it exists

    def install(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGINT, PARENT_DEATH_SIGNAL):
            signal.signal(sig, self._handle)
        return self

    def bind_to_parent(self) -> StopRequest:
        """End with the patrolkit process that started this one (``child_env``), if one did."""
        self.parent = end_with_parent(log, PARENT_DEATH_SIGNAL)
        return self

    def attach(self, recorder: Recorder) -> None:
        self.recorder = recorder
        recorder.stop_cause = self.cause

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.parent is not None and (signum == PARENT_DEATH_SIGNAL or os.getppid() != self.parent):
            self.cause = DEVICE_PROCESS_DIED
        if self.recorder is not None:
            self.recorder.stop_cause = self.cause
        if self.signal is None:
            self.signal = signal.Signals(signum).name
        self.event.set()


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
    stop = StopRequest().install().bind_to_parent()
    try:
        lock = FolderLock(args.dir, LOCK_FILE, "recorder").acquire()
    except FolderLocked as exc:
        print(
            f"patrol-recorder: {exc}; a second recorder must not write into it", file=sys.stderr, flush=True
        )
        log_event(log, "recorder.folder_locked", dir=str(args.dir), holder=exc.holder)
        return EXIT_FOLDER_LOCKED
    try:
        _record(args, stop)
    finally:
        lock.release()
        log_event(log, "recorder.stopped", pid=os.getpid(), signal=stop.signal, cause=stop.cause)
    return 0


def _record(args: argparse.Namespace, stop: StopRequest) -> None:
    from edge.identity import load_identity
    from edge.recorder.position import no_gps, receiver_source
    from edge.recorder.recorder import Recorder, RecorderSettings
    from edge.recorder.recovery import parse_segment_name
    from edge.recorder.segment_writer import EncoderSettings
    from edge.recorder.signer import SegmentSigner
    from edge.recorder.storage_policy import StoragePolicy
    from hardware.camera import CaptureFormat
    from hardware.gps import GpsReceiver

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
    recorder_gps = GpsReceiver(args.gps).start() if args.gps else None
    try:
        source = receiver_source(recorder_gps) if recorder_gps is not None else no_gps
        recorder = Recorder(settings, signer, index=index, storage=storage, gps=source)
        stop.attach(recorder)
        if index is not None:
            files = {
                p[0]: path.name for path in args.dir.glob("*.mp4") if (p := parse_segment_name(path.name))
            }
            index.reconcile(recorder.journal, files)
        if not stop.event.is_set():
            recorder.run(stop.event)
    finally:
        if recorder_gps is not None:
            recorder_gps.stop()


if __name__ == "__main__":
    raise SystemExit(main())
