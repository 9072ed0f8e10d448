"""The recording directory's durable journals: ``manifest.jsonl`` (signed chained entries) and ``gaps.jsonl``.

Each line is appended and fsynced before anyone is told about it. A line torn by a crash (no final newline
or not valid JSON) is cut off when the journal is opened; the segment it described is still on disk and
the repair pass closes it again. These files, not the database, are the source of truth for the chain;
the database index is reconciled from them at every start.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from core.manifest import GENESIS_HASH, ManifestEntry, entry_from_json, entry_hash, entry_to_json

MANIFEST_FILE = "manifest.jsonl"
GAPS_FILE = "gaps.jsonl"


@dataclass(frozen=True)
class RecordingGap:
    """A stretch of the shift without video. ``cause``: recorder_crash, power_loss, recorder_stopped,
    camera_error, disk_full, encoder_error."""

    gap_id: str
    start_utc: str
    end_utc: str
    cause: str
    seq_before: int | None
    seq_after: int | None

    @staticmethod
    def new(
        start_utc: str, end_utc: str, cause: str, seq_before: int | None, seq_after: int | None
    ) -> RecordingGap:
        return RecordingGap(str(uuid.uuid4()), start_utc, end_utc, cause, seq_before, seq_after)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_line(path: Path, line: str) -> None:
    created = not path.exists()
    with path.open("ab", buffering=0) as fh:
        fh.write(line.encode("utf-8") + b"\n")
        os.fsync(fh.fileno())
    if created:
        fsync_directory(path.parent)


def _complete_lines(path: Path) -> Iterator[str]:
    """Yield complete lines and cut a torn tail off the file."""
    if not path.exists():
        return
    data = path.read_bytes()
    good_end = 0
    lines: list[str] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        raw = data[pos:nl]
        try:
            json.loads(raw)
        except ValueError:
            break
        lines.append(raw.decode("utf-8"))
        good_end = nl + 1
        pos = nl + 1
    if good_end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(good_end)
            os.fsync(fh.fileno())
    yield from lines


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._manifest_path = directory / MANIFEST_FILE
        self._gaps_path = directory / GAPS_FILE
        self._entries = [entry_from_json(line) for line in _complete_lines(self._manifest_path)]
        self._gaps = [RecordingGap(**json.loads(line)) for line in _complete_lines(self._gaps_path)]

    def entries(self) -> list[ManifestEntry]:
        return list(self._entries)

    def gaps(self) -> list[RecordingGap]:
        return list(self._gaps)

    def last(self) -> ManifestEntry | None:
        return self._entries[-1] if self._entries else None

    def next_seq(self) -> int:
        last = self.last()
        return 1 if last is None else last.seq + 1

    def chain_head(self) -> str:
        last = self.last()
        return GENESIS_HASH if last is None else entry_hash(last)

    def append_entry(self, entry: ManifestEntry) -> None:
        if entry.seq != self.next_seq() or entry.prev_hash != self.chain_head():
            raise ValueError(f"manifest entry {entry.seq} does not extend the chain")
        _append_line(self._manifest_path, entry_to_json(entry))
        self._entries.append(entry)

    def append_gap(self, gap: RecordingGap) -> None:
        _append_line(self._gaps_path, json.dumps(gap.to_dict(), sort_keys=True, separators=(",", ":")))
        self._gaps.append(gap)
