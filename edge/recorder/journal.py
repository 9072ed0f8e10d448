"""The recording directory's durable journals: ``manifest.jsonl`` (signed chained entries) and ``gaps.jsonl``.

Each line is appended and fsynced before anyone is told about it. A line torn by a crash (no final newline
or not valid JSON) is cut off when the journal is opened; the segment it described is still on disk and
the repair pass closes it again. These files, not the database, are the source of truth for the chain;
the database index is reconciled from them at every start.

Rotation: once ``manifest.jsonl`` holds ``rotate_every`` entries it is renamed (atomically, directory
fsynced) to ``manifest-<first seq>-<last seq>.jsonl`` and the next entry starts a new file, chained to the
archive's last entry by its ``prev_hash`` as always. So a device that records for years opens, parses and
keeps in memory only its current file; archives are read only when asked (``entries_from``). A crash right
after the rename leaves no current file: the chain head is then the newest archive's last entry.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from core.manifest import GENESIS_HASH, ManifestEntry, entry_from_json, entry_hash, entry_to_json

MANIFEST_FILE = "manifest.jsonl"
GAPS_FILE = "gaps.jsonl"
ROTATE_EVERY = 1000  # entries per manifest file (about two days of 60 s segments around the clock)
_ARCHIVE = re.compile(r"^manifest-(\d{10})-(\d{10})\.jsonl$")
RECORDER_STOPPED = "recorder_stopped"  # a clean stop (shutdown, a restart of the device process)
DEVICE_PROCESS_DIED = "device_process_died"  # a clean stop because the supervising device process died


@dataclass(frozen=True)
class RecordingGap:
    """A stretch of the shift without video. ``cause``: recorder_crash, power_loss, recorder_stopped,
    device_process_died, camera_error, disk_full, encoder_error."""

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


def manifest_archives(directory: Path) -> list[tuple[int, int, Path]]:
    """The rotated manifest files as ``(first seq, last seq, path)``, oldest first."""
    found = []
    for path in directory.glob("manifest-*.jsonl"):
        m = _ARCHIVE.match(path.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), path))
    return sorted(found)


def _last_line(path: Path, tail: int = 64 * 1024) -> str | None:
    """The last line of a closed journal file (an archive is renamed only after its last line was fsynced),
    read from its end: a restart does not parse the whole archive to learn the chain head."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - tail))
        lines = fh.read().rstrip(b"\n").rsplit(b"\n", 1)
    return lines[-1].decode("utf-8") if lines and lines[-1] else None


class Journal:
    def __init__(self, directory: Path, rotate_every: int = ROTATE_EVERY) -> None:
        if rotate_every < 1:
            raise ValueError("rotate_every must be at least 1")
        self.directory = directory
        self.rotate_every = rotate_every
        directory.mkdir(parents=True, exist_ok=True)
        self._manifest_path = directory / MANIFEST_FILE
        self._gaps_path = directory / GAPS_FILE
        self._entries = [entry_from_json(line) for line in _complete_lines(self._manifest_path)]
        self._gaps = [RecordingGap(**json.loads(line)) for line in _complete_lines(self._gaps_path)]
        self._archived_last: ManifestEntry | None = None  # the chain head while the current file is empty
        archives = manifest_archives(directory)
        if archives:
            last = _last_line(archives[-1][2])
            self._archived_last = entry_from_json(last) if last else None

    def entries(self) -> list[ManifestEntry]:
        """The entries of the current manifest file (all of them until the first rotation)."""
        return list(self._entries)

    def entries_from(self, seq: int) -> list[ManifestEntry]:
        """Every entry with a sequence number >= ``seq``, reading only the archives that hold some."""
        out: list[ManifestEntry] = []
        for _first, last, path in manifest_archives(self.directory):
            if last >= seq:
                out.extend(e for e in map(entry_from_json, _complete_lines(path)) if e.seq >= seq)
        out.extend(e for e in self._entries if e.seq >= seq)
        return out

    def gaps(self) -> list[RecordingGap]:
        return list(self._gaps)

    def last(self) -> ManifestEntry | None:
        return self._entries[-1] if self._entries else self._archived_last

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
        if len(self._entries) >= self.rotate_every:
            self._rotate()

    def _rotate(self) -> None:
        first, last = self._entries[0].seq, self._entries[-1].seq
        os.rename(self._manifest_path, self.directory / f"manifest-{first:010d}-{last:010d}.jsonl")
        fsync_directory(self.directory)
        self._archived_last = self._entries[-1]
        self._entries = []

    def append_gap(self, gap: RecordingGap) -> None:
        _append_line(self._gaps_path, json.dumps(gap.to_dict(), sort_keys=True, separators=(",", ":")))
        self._gaps.append(gap)
