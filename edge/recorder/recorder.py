"""The recording loop: camera → overlay → segment writer; segments roll every N seconds and are closed,
hashed, signed and chained on a closer thread so capture never waits.

There is no stop, pause or mute: the loop runs until its process is terminated by the system. Every
interruption (camera lost, disk full, encoder error, a crash found at start) becomes a ``RecordingGap``
with its cause. Journal and index writes all happen on the closer thread, in order.
The GPS fix of every frame goes into the overlay and into its segment's track (start and end position, seconds
with a fix: ``ManifestEntry.gps``); the latest fix and when it was read go into the status file.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from core.clock import Clock, SystemClock
from core.manifest import ManifestEntry, format_utc
from core.structured_log import log_event
from edge.recorder.capture import CameraFactory, CameraFailed, CaptureEnded, CaptureThread
from edge.recorder.fragments import count_frames, repair_segment
from edge.recorder.journal import RECORDER_STOPPED, Journal, RecordingGap, fsync_directory
from edge.recorder.overlay import Overlay, OverlayFix, overlay_text
from edge.recorder.position import GpsSource, Position, SegmentTrack, no_gps, rounded, status_fix
from edge.recorder.recovery import close_segment_file, current_boot_id, recover, segment_name, write_state
from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
from edge.recorder.signer import SegmentSigner
from edge.recorder.storage_policy import StoragePolicy, StorageStatus
from hardware.camera import CaptureFormat, Frame, as_yuv420p, open_camera

log = logging.getLogger(__name__)
STATUS_FILE = "recorder.status.json"


class RecordingIndex(Protocol):
    """Where closed segments and gaps are announced (the device database + sync outbox)."""

    def segment_closed(self, entry: ManifestEntry, path: Path) -> None: ...

    def gap_recorded(self, gap: RecordingGap) -> None: ...

    def storage_warning(self, status: StorageStatus) -> None: ...


class NoIndex:
    def segment_closed(self, entry: ManifestEntry, path: Path) -> None:
        pass

    def gap_recorded(self, gap: RecordingGap) -> None:
        pass

    def storage_warning(self, status: StorageStatus) -> None:
        pass


@dataclass(frozen=True)
class RecorderSettings:
    directory: Path
    camera: str
    capture: CaptureFormat = field(default_factory=CaptureFormat)
    segment_seconds: int = 60
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    badge: str = ""
    storage_check_seconds: float = 5.0
    retry_seconds: float = 1.0  # wait between attempts while the camera is lost or the disk is full
    capture_queue_frames: int = 30  # frames buffered between camera and encoder (1 s at 30 fps)
    gps_current_seconds: float = 5.0  # an older fix is "no fix" for the overlay and the segment track


@dataclass
class _Open:
    writer: SegmentWriter
    seq: int
    start: datetime
    track: SegmentTrack


class Recorder:
    def __init__(
        self,
        settings: RecorderSettings,
        signer: SegmentSigner,
        index: RecordingIndex | None = None,
        clock: Clock | None = None,
        camera_factory: CameraFactory = open_camera,
        gps: GpsSource = no_gps,
        storage: StoragePolicy | None = None,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.index = index or NoIndex()
        self.clock = clock or SystemClock()
        self._camera_factory = camera_factory
        self._gps = gps
        self.directory = settings.directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage = storage or StoragePolicy(self.directory)
        self.journal = Journal(self.directory)
        self._jobs: queue.Queue[tuple[str, object] | None] = queue.Queue()
        self._closer_error: BaseException | None = None
        self._open: _Open | None = None
        self._next_seq = 0
        self._gap_start: str | None = None
        self._gap_cause: str | None = None
        self._last_end: datetime | None = None
        self._frames_total = 0
        self._state = "starting"
        self._storage_status: StorageStatus | None = None
        self._warned_low = False
        self._boot_id = current_boot_id()
        self._capture: CaptureThread | None = None
        self._dropped_logged = 0
        self.stop_cause = RECORDER_STOPPED  # the gap cause the next start records after a clean stop

    # --- start -----------------------------------------------------------------------------------------

    def recover(self) -> None:
        result = recover(
            self.directory,
            self.journal,
            self.signer,
            self.settings.capture.fps,
            self.index.segment_closed,
            boot_id=self._boot_id,
        )
        self._next_seq = self.journal.next_seq()
        if result.gap_cause is not None:
            self._gap_start, self._gap_cause = result.gap_start_utc, result.gap_cause

    # --- loop ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, max_frames: int | None = None) -> None:
        """Record until ``stop`` is set (system shutdown) or ``max_frames`` frames (benchmarks).

        Frames already captured when ``stop`` is set are still written (at most ``capture_queue_frames``)."""
        self.recover()
        closer = threading.Thread(target=self._closer_loop, name="segment-closer", daemon=True)
        closer.start()
        halt = threading.Event()
        capture = CaptureThread(
            self._camera_factory,
            self.settings.camera,
            self.settings.capture,
            halt,
            self.settings.capture_queue_frames,
            self.settings.retry_seconds,
            shutdown=stop,
        ).start()
        self._capture = capture
        overlay = Overlay(self.settings.capture.width, self.settings.capture.height)
        segment_frames = self.settings.segment_seconds * self.settings.capture.fps
        next_storage_check = 0.0
        next_status = 0.0
        disk_full = False
        try:
            while True:
                self._raise_closer_error()
                if stop.is_set() or (max_frames is not None and self._frames_total >= max_frames):
                    halt.set()
                mono = self.clock.monotonic()
                if mono >= next_storage_check:
                    next_storage_check = mono + self.settings.storage_check_seconds
                    disk_full = self._check_storage()
                    if disk_full:
                        capture.paused.set()
                    else:
                        capture.paused.clear()
                if disk_full:
                    if halt.is_set():
                        break
                    self._write_status()
                    stop.wait(self.settings.retry_seconds)
                    continue
                try:
                    item = capture.items.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, CaptureEnded):
                    break
                if isinstance(item, CameraFailed):
                    self._interrupt("camera_error", item.detail)
                    self._write_status()
                    continue
                self._record(item, overlay)
                if self._open is not None and self._open.writer.frames >= segment_frames:
                    self._finish_segment()
                if mono >= next_status:
                    next_status = mono + 1.0
                    self._write_status()
        finally:
            halt.set()
            capture.consumer_gone.set()
            capture.join(timeout=10)
            if self._open is not None:
                self._finish_segment()
            self._jobs.put(None)
            closer.join()
            if self._closer_error is None:
                write_state(self.directory, self._boot_id, clean=True, stop_cause=self.stop_cause)
            self._state = "stopped"
            self._write_status()
        self._raise_closer_error()

    def _record(self, frame: Frame, overlay: Overlay) -> None:
        now = self.clock.now()
        if self._open is None:
            # A source faster than real time (a file) must not make segments overlap in the chain.
            self._start_segment(max(now, self._last_end) if self._last_end else now)
        assert self._open is not None
        capture = self.settings.capture
        video = as_yuv420p(frame, capture.width, capture.height)
        position = self._current_position()
        fix = OverlayFix(*position) if position is not None else None
        text = overlay_text(now, self.signer.device_id, self.settings.badge, fix)
        overlay.apply(video, text)
        try:
            self._open.writer.write(video)
        except OSError as exc:
            self._abandon_segment("disk_full" if exc.errno == 28 else "encoder_error", str(exc))
            return
        self._open.track.add(position)
        self._frames_total += 1

    def _current_position(self) -> Position | None:
        reading = self._gps()
        if reading is None or reading.age_s > self.settings.gps_current_seconds:
            return None
        return rounded(reading.latitude, reading.longitude)

    def _start_segment(self, now: datetime) -> None:
        seq = self._next_seq
        path = self.directory / segment_name(seq, now)
        capture = self.settings.capture
        writer = SegmentWriter(path, capture.width, capture.height, capture.fps, self.settings.encoder)
        fsync_directory(self.directory)
        self._open = _Open(writer, seq, now, SegmentTrack(capture.fps))
        self._next_seq += 1
        self._state = "recording"
        if self._gap_start is not None and self._gap_cause is not None:
            gap = RecordingGap.new(
                self._gap_start, format_utc(now), self._gap_cause, seq - 1 if seq > 1 else None, seq
            )
            self._jobs.put(("gap", gap))
        self._gap_start = self._gap_cause = None
        log_event(log, "recorder.segment_opened", seq=seq, path=path.name)

    def _finish_segment(self) -> None:
        assert self._open is not None
        opened, self._open = self._open, None
        self._last_end = opened.start + timedelta(seconds=opened.writer.frames / self.settings.capture.fps)
        self._jobs.put(("close", opened))

    def _abandon_segment(self, cause: str, detail: str) -> None:
        assert self._open is not None
        opened, self._open = self._open, None
        opened.writer.abandon()
        self._last_end = opened.start + timedelta(seconds=opened.writer.frames / self.settings.capture.fps)
        self._jobs.put(("repair", opened))
        self._interrupt(cause, detail)

    def _interrupt(self, cause: str, detail: str) -> None:
        """Close the open segment (if any) and start a gap with ``cause``."""
        if self._open is not None:
            self._finish_segment()
        if self._gap_start is None:
            start = self._last_end or self.clock.now()
            self._gap_start, self._gap_cause = format_utc(start), cause
            log_event(log, "recorder.interrupted", cause=cause, detail=detail)
        self._state = cause

    def _check_storage(self) -> bool:
        """True while the disk is full (recording must wait)."""
        status = self.storage.check()
        self._storage_status = status
        if status.low and not self._warned_low:
            self._warned_low = True
            log_event(
                log,
                "recorder.storage_low",
                hours_left=round(status.hours_left, 2),
                free_bytes=status.free_bytes,
            )
            self._jobs.put(("warn", status))
        elif not status.low:
            self._warned_low = False
        if status.full:
            self._interrupt("disk_full", f"{status.free_bytes} bytes free")
            return True
        return False

    # --- closer thread ---------------------------------------------------------------------------------

    def _closer_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._closer_error is not None:
                continue
            try:
                kind, payload = job
                if kind == "close" and isinstance(payload, _Open):
                    closed = payload.writer.close()
                    self._close(payload, closed.frames, repaired=False)
                elif kind == "repair" and isinstance(payload, _Open):
                    result = repair_segment(payload.writer.path)
                    frames = count_frames(payload.writer.path) if result.kept_size else 0
                    if frames:
                        self._close(payload, frames, repaired=True)
                    else:
                        payload.writer.path.unlink(missing_ok=True)
                elif kind == "gap" and isinstance(payload, RecordingGap):
                    self.journal.append_gap(payload)
                    self.index.gap_recorded(payload)
                    log_event(
                        log,
                        "recorder.gap_recorded",
                        cause=payload.cause,
                        start=payload.start_utc,
                        end=payload.end_utc,
                    )
                elif kind == "warn" and isinstance(payload, StorageStatus):
                    self.index.storage_warning(payload)
            except BaseException as exc:  # the process must die and be restarted; repair will finish the job
                log.exception("segment closer failed")
                self._closer_error = exc

    def _close(self, opened: _Open, frames: int, repaired: bool) -> None:
        entry = close_segment_file(
            self.journal,
            self.signer,
            opened.writer.path,
            opened.seq,
            opened.start,
            frames,
            self.settings.capture.fps,
            repaired,
            gps=opened.track.summary(frames),
        )
        self.storage.observe_rate(entry.size, frames / self.settings.capture.fps)
        self.index.segment_closed(entry, opened.writer.path)
        log_event(
            log,
            "recorder.segment_closed",
            seq=entry.seq,
            frames=frames,
            bytes=entry.size,
            sha256=entry.sha256,
        )

    def _raise_closer_error(self) -> None:
        if self._closer_error is not None:
            raise RuntimeError("segment closer failed") from self._closer_error

    # --- status ----------------------------------------------------------------------------------------

    def _write_status(self) -> None:
        storage = self._storage_status
        status = {
            "state": self._state,
            "pid": os.getpid(),
            "updated_utc": format_utc(self.clock.now()),
            "segment_seq": self._open.seq if self._open else None,
            "segment_frames": self._open.writer.frames if self._open else 0,
            "frames_total": self._frames_total,
            "last_closed_seq": self._next_seq - 1,
            "free_bytes": storage.free_bytes if storage else None,
            "hours_left": round(storage.hours_left, 2) if storage else None,
            "storage_low": storage.low if storage else False,
            "gap_cause": self._gap_cause,
            "frames_dropped": self._capture.dropped if self._capture else 0,
            "gps_fix": status_fix(self._gps(), self.clock.now()),
        }
        if self._capture is not None and self._capture.dropped > self._dropped_logged:
            log_event(log, "recorder.frames_dropped", total=self._capture.dropped)
            self._dropped_logged = self._capture.dropped
        tmp = self.directory / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, self.directory / STATUS_FILE)


def read_status(directory: Path) -> dict[str, object] | None:
    try:
        data = json.loads((directory / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
