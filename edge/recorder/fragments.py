"""Fragmented-MP4 structure: walk top-level boxes, cut a torn file back to its last complete fragment, count frames.

A box is a 32-bit big-endian size and a 4-byte type; size 1 means a 64-bit size follows, size 0 means
"to the end of the file" (never trusted in a torn file). A fragment is a ``moof`` followed by a complete
``mdat``. Repair keeps ``ftyp``, ``moov`` and every complete fragment, and truncates the rest.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True)
class RepairResult:
    original_size: int
    kept_size: int
    fragments: int

    @property
    def truncated(self) -> bool:
        return self.kept_size < self.original_size


def _boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each complete top-level box, stopping at the first torn or invalid one."""
    out: list[tuple[bytes, int, int]] = []
    total = path.stat().st_size
    with path.open("rb") as fh:
        offset = 0
        while offset + 8 <= total:
            fh.seek(offset)
            head = fh.read(8)
            size, kind = struct.unpack(">I4s", head)
            header = 8
            if size == 1:
                if offset + 16 > total:
                    break
                (size,) = struct.unpack(">Q", fh.read(8))
                header = 16
            if size == 0 or size < header or offset + size > total:
                break
            out.append((kind, offset, size))
            offset += size
    return out


def complete_prefix(path: Path) -> tuple[int, int]:
    """(bytes, fragments) of the longest prefix that is ``ftyp`` + ``moov`` + complete fragments."""
    boxes = _boxes(path)
    kinds = [b[0] for b in boxes]
    if b"moov" not in kinds:
        return 0, 0
    moov_index = kinds.index(b"moov")
    keep = boxes[moov_index][1] + boxes[moov_index][2]
    fragments = 0
    i = moov_index + 1
    while i < len(boxes):
        kind, offset, size = boxes[i]
        if kind == b"moof" and i + 1 < len(boxes) and boxes[i + 1][0] == b"mdat":
            keep = boxes[i + 1][1] + boxes[i + 1][2]
            fragments += 1
            i += 2
        elif kind == b"mfra":
            keep = offset + size
            i += 1
        elif kind == b"moof":
            break
        else:
            i += 1
    return keep, fragments


def repair_segment(path: Path) -> RepairResult:
    """Truncate ``path`` after its last complete fragment and fsync it."""
    original = path.stat().st_size
    keep, fragments = complete_prefix(path)
    if keep < original:
        with path.open("r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    return RepairResult(original, keep, fragments)


def count_frames(path: Path) -> int:
    """Video packets in the file (one per frame), by demuxing without decoding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
