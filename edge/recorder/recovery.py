"""Repair at start: close every segment a crash or power loss left open, and name the cause of the gap.

Segment files are named ``<seq:010d>_<start UTC>.mp4``. A file whose number is past the manifest's last
entry was never closed: it is cut back to its last complete fragment, its real frame count and end time are
measured, and it is closed like any other segment (hash, signed chained entry), marked ``repaired``.
A file with no complete fragment holds no playable video and is removed; its number is reused.
The cause of the gap comes from the state file: a clean stop (``recorder_stopped``, or ``device_process_died``
when the recorder was stopped because its supervisor died), a crash in this boot, or a power loss (the kernel's
boot id changed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.manifest import ManifestEntry, SegmentGps, format_utc, sign_entry
from core.structured_log import log_event
from edge.recorder.fragments import count_frames, repair_segment
from edge.recorder.journal import DEVICE_PROCESS_DIED, RECORDER_STOPPED, Journal, fsync_directory
from edge.recorder.signer import SegmentSigner

log = logging.getLogger(__name__)
SEGMENT_NAME = re.compile(r"^(\d{10})_(\d{8}T\d{6}\.\d{3}Z)\.mp4$")
STATE_FILE = "recorder.state.json"
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
CLEAN_STOP_CAUSES = (RECORDER_STOPPED, DEVICE_PROCESS_DIED)


def segment_name(seq: int, start: datetime) -> str:
    return (
        f"{seq:010d}_{start.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}.{start.microsecond // 1000:03d}Z.mp4"
    )


def parse_segment_name(name: str) -> tuple[int, datetime] | None:
    match = SEGMENT_NAME.match(name)
    if not match:
        return None
    start = datetime.strptime(match.group(2), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    return int(match.group(1)), start


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def current_boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        return "unknown"


def close_segment_file(
    journal: Journal,
    signer: SegmentSigner,
    path: Path,
    seq: int,
    start: datetime,
    frames: int,
    fps: int,
    repaired: bool,
    gps: SegmentGps | None = None,
) -> ManifestEntry:
    """Hash the (already fsynced) file and append its signed, chained entry to the manifest.

    ``gps`` is the segment's track as the recorder saw it; None when it is not known (repair at start)."""
    end = start + timedelta(seconds=frames / fps)
    entry = ManifestEntry(
        device_id=signer.device_id,
        seq=seq,
        start_utc=format_utc(start),
        end_utc=format_utc(end),
        frames=frames,
        size=path.stat().st_size,
        sha256=file_sha256(path),
        prev_hash=journal.chain_head(),
        kid=signer.kid,
        repaired=repaired,
        gps=gps,
    )
    signed = sign_entry(entry, signer.private_key)
    journal.append_entry(signed)
    return signed


@dataclass(frozen=True)
class Recovery:
    repaired: list[ManifestEntry]
    gap_cause: str | None  # None: nothing was recorded before, so there is no gap to explain
    gap_start_utc: str | None


def open_segments(directory: Path, first_unclosed: int) -> list[tuple[int, datetime, Path]]:
    found = []
    for path in directory.iterdir():
        parsed = parse_segment_name(path.name)
        if parsed and parsed[0] >= first_unclosed:
            found.append((parsed[0], parsed[1], path))
    return sorted(found)


def recover(
    directory: Path,
    journal: Journal,
    signer: SegmentSigner,
    fps: int,
    on_closed: Callable[[ManifestEntry, Path], None],
    boot_id: str | None = None,
) -> Recovery:
    boot = boot_id or current_boot_id()
    state_path = directory / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = None
    repaired: list[ManifestEntry] = []
    for seq, start, path in open_segments(directory, journal.next_seq()):
        if seq != journal.next_seq():
            log_event(
                log, "recorder.repair_skipped", path=str(path), reason="number does not follow the manifest"
            )
            continue
        result = repair_segment(path)
        frames = count_frames(path) if result.kept_size else 0
        if frames == 0:
            path.unlink()
            fsync_directory(directory)
            log_event(log, "recorder.repair_empty", path=str(path), lost_bytes=result.original_size)
            continue
        entry = close_segment_file(journal, signer, path, seq, start, frames, fps, repaired=True)
        on_closed(entry, path)
        repaired.append(entry)
        log_event(
            log,
            "recorder.segment_repaired",
            seq=seq,
            frames=frames,
            cut_bytes=result.original_size - result.kept_size,
        )
    last = journal.last()
    cause: str | None
    if last is None:
        cause = None
    elif state is None:
        cause = "unknown"
    elif not state.get("clean", False) or repaired:
        cause = "recorder_crash" if state.get("boot_id") == boot else "power_loss"
    else:
        recorded = state.get("stop_cause")
        cause = recorded if recorded in CLEAN_STOP_CAUSES else RECORDER_STOPPED
    write_state(directory, boot, clean=False)
    return Recovery(repaired, cause, last.end_utc if last else None)


def write_state(directory: Path, boot_id: str, clean: bool, stop_cause: str | None = None) -> None:
    """``clean``: the recorder closed everything; ``stop_cause`` says why it stopped (one of CLEAN_STOP_CAUSES)."""
    tmp = directory / (STATE_FILE + ".tmp")
    state: dict[str, object] = {"boot_id": boot_id, "clean": clean, "pid": os.getpid()}
    if stop_cause is not None:
        state["stop_cause"] = stop_cause
    with tmp.open("w") as fh:
        json.dump(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / STATE_FILE)
    fsync_directory(directory)
