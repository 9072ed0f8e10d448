"""The layout of a stored fragmented-MP4 segment, read as it streams by: where its initialisation data ends
(``ftyp`` + ``moov``) and, for each fragment (``moof`` + ``mdat``), its byte range, decode time and duration.
The playlist (``server.video.playlist``) names these byte ranges; nothing is re-encoded.

``Fmp4Scanner`` is fed the file's bytes in any pieces and keeps only box headers and the small boxes it must
read (``moov`` up to ``MAX_MOOV_BYTES``, each ``moof`` up to ``MAX_MOOF_BYTES``); ``mdat`` payloads are
skipped. A file that is not ``ftyp``/``moov`` then complete fragments, or whose boxes lie about their sizes,
is refused with ``Fmp4Error`` naming what is wrong. Durations come from the ``trun`` sample durations (or the
``tfhd``/``trex`` defaults) in the video track's timescale (``mdhd``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_MOOV_BYTES = 4 * 1024 * 1024
MAX_MOOF_BYTES = 4 * 1024 * 1024
MAX_FRAGMENTS = 100_000
_CONTAINERS = {b"moov", b"trak", b"mdia", b"mvex", b"moof", b"traf", b"minf", b"stbl"}


class Fmp4Error(ValueError):
    """The bytes are not a fragmented MP4 segment this server can describe; the message says why."""


class Fragment(NamedTuple):
    offset: int  # of its moof
    size: int  # moof + mdat
    decode_time: int  # tfdt, in timescale units
    duration: int  # sum of its samples' durations, in timescale units


@dataclass(frozen=True)
class Fmp4Layout:
    init_size: int  # bytes [0, init_size) are ftyp + moov
    timescale: int
    fragments: tuple[Fragment, ...]
    size: int

    @property
    def duration_s(self) -> float:
        return sum(f.duration for f in self.fragments) / self.timescale

    def to_json(self) -> dict[str, object]:
        return {
            "init_size": self.init_size,
            "timescale": self.timescale,
            "size": self.size,
            "fragments": [[f.offset, f.size, f.decode_time, f.duration] for f in self.fragments],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Fmp4Layout:
        raw = data["fragments"]
        if not isinstance(raw, list) or not all(isinstance(item, list) and len(item) == 4 for item in raw):
            raise Fmp4Error("layout: fragments is not a list of [offset, size, decode time, duration]")
        fragments = tuple(map(Fragment._make, raw))
        return cls(int(data["init_size"]), int(data["timescale"]), fragments, int(data["size"]))  # type: ignore[call-overload]


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int, int]]:
    """(type, offset of payload, end of box, header size) of each box in ``data[start:end]``."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise Fmp4Error(f"box {kind!r} at {pos}: truncated 64-bit size")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Fmp4Error(f"box {kind!r} at {pos}: size {size} does not fit its parent")
        out.append((kind, pos + header, pos + size, header))
        pos += size
    if pos != end:
        raise Fmp4Error(f"{end - pos} stray bytes after the last box")
    return out


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Payload ranges of every box at ``path`` (e.g. ``[b"trak", b"mdia", b"mdhd"]``) below ``data[start:end]``."""
    found: list[tuple[int, int]] = []
    for kind, payload, box_end, _ in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                found.append((payload, box_end))
            elif kind in _CONTAINERS:
                found.extend(_find(data, path[1:], payload, box_end))
    return found


def _u32(data: bytes, pos: int, end: int, what: str) -> int:
    if pos + 4 > end:
        raise Fmp4Error(f"{what}: truncated")
    return int(struct.unpack_from(">I", data, pos)[0])


def _video_track(moov: bytes) -> tuple[int, int, int]:
    """(track id, timescale, default sample duration from trex) of the first video track."""
    for trak_start, trak_end in _find(moov, [b"trak"]):
        handlers = _find(moov, [b"mdia", b"hdlr"], trak_start, trak_end)
        if not handlers or moov[handlers[0][0] + 8 : handlers[0][0] + 12] != b"vide":
            continue
        tkhd = _find(moov, [b"tkhd"], trak_start, trak_end)
        mdhd = _find(moov, [b"mdia", b"mdhd"], trak_start, trak_end)
        if not tkhd or not mdhd:
            raise Fmp4Error("moov: video track without tkhd or mdhd")
        t_pos, t_end = tkhd[0]
        version = moov[t_pos] if t_pos < t_end else 0
        track_id = _u32(moov, t_pos + (20 if version == 1 else 12), t_end, "tkhd")
        m_pos, m_end = mdhd[0]
        version = moov[m_pos] if m_pos < m_end else 0
        timescale = _u32(moov, m_pos + (20 if version == 1 else 12), m_end, "mdhd")
        if timescale == 0:
            raise Fmp4Error("mdhd: timescale is 0")
        default_duration = 0
        for trex_pos, trex_end in _find(moov, [b"mvex", b"trex"]):
            if _u32(moov, trex_pos + 4, trex_end, "trex") == track_id:
                default_duration = _u32(moov, trex_pos + 12, trex_end, "trex")
        return track_id, timescale, default_duration
    raise Fmp4Error("moov: no video track")


def _fragment_timing(moof: bytes, track_id: int, trex_duration: int) -> tuple[int, int]:
    """(decode time, duration) of the video track in one moof."""
    for traf_start, traf_end in _find(moof, [b"traf"]):
        tfhd = _find(moof, [b"tfhd"], traf_start, traf_end)
        if not tfhd:
            raise Fmp4Error("moof: traf without tfhd")
        pos, end = tfhd[0]
        flags = _u32(moof, pos, end, "tfhd") & 0xFFFFFF
        if _u32(moof, pos + 4, end, "tfhd") != track_id:
            continue
        cursor = pos + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        default_duration = _u32(moof, cursor, end, "tfhd") if flags & 0x08 else trex_duration
        decode_time = 0
        tfdt = _find(moof, [b"tfdt"], traf_start, traf_end)
        if tfdt:
            t_pos, t_end = tfdt[0]
            if moof[t_pos] == 1:
                if t_pos + 12 > t_end:
                    raise Fmp4Error("tfdt: truncated")
                decode_time = int(struct.unpack_from(">Q", moof, t_pos + 4)[0])
            else:
                decode_time = _u32(moof, t_pos + 4, t_end, "tfdt")
        duration = 0
        for r_pos, r_end in _find(moof, [b"trun"], traf_start, traf_end):
            r_flags = _u32(moof, r_pos, r_end, "trun") & 0xFFFFFF
            count = _u32(moof, r_pos + 4, r_end, "trun")
            cursor = r_pos + 8 + (4 if r_flags & 0x001 else 0) + (4 if r_flags & 0x004 else 0)
            per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if r_flags & bit)
            if cursor + count * per_sample > r_end:
                raise Fmp4Error(f"trun: {count} samples do not fit the box")
            if r_flags & 0x100:
                for i in range(count):
                    duration += int(struct.unpack_from(">I", moof, cursor + i * per_sample)[0])
            else:
                duration += count * default_duration
        return decode_time, duration
    raise Fmp4Error("moof: no fragment of the video track")


@dataclass
class Fmp4Scanner:
    """Feed the file in order (``feed``), then ``finish`` for its layout."""

    _buffer: bytearray = field(default_factory=bytearray)
    _offset: int = 0  # file offset of _buffer[0]
    _skip: int = 0  # mdat bytes still to pass over
    _init_size: int = 0
    _seen_ftyp: bool = False
    _track: tuple[int, int, int] | None = None
    _pending_moof: tuple[int, int, int, int] | None = None  # offset, size, decode time, duration
    _fragments: list[Fragment] = field(default_factory=list)

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        if self._skip:
            n = min(self._skip, len(view))
            self._skip -= n
            self._offset += n
            view = view[n:]
        self._buffer += view
        self._parse()

    def _parse(self) -> None:
        while True:
            if self._skip:
                n = min(self._skip, len(self._buffer))
                del self._buffer[:n]
                self._skip -= n
                self._offset += n
                if self._skip:
                    return
            if len(self._buffer) < 8:
                return
            size, kind = struct.unpack_from(">I4s", self._buffer, 0)
            header = 8
            if size == 1:
                if len(self._buffer) < 16:
                    return
                (size,) = struct.unpack_from(">Q", self._buffer, 8)
                header = 16
            if size < header:
                raise Fmp4Error(f"box {bytes(kind)!r} at {self._offset}: size {size} (0 or too small) is not allowed here")
            name = bytes(kind)
            self._box(name, size, header)  # header checks: the same answer however often asked
            if not self._needs_whole(name):
                self._skip = size  # mdat and anything else: passed over, header and all
                continue
            if len(self._buffer) < size:
                return  # wait for the rest of this box
            box = bytes(self._buffer[:size])
            del self._buffer[:size]
            start = self._offset
            self._offset += size
            self._whole_box(name, box, start)

    @staticmethod
    def _needs_whole(kind: bytes) -> bool:
        return kind in (b"moov", b"moof", b"ftyp")

    def _box(self, kind: bytes, size: int, header: int) -> None:
        """Checks made on a box's header alone."""
        if kind == b"moov" and size > MAX_MOOV_BYTES:
            raise Fmp4Error(f"moov of {size} bytes is larger than {MAX_MOOV_BYTES}")
        if kind == b"moof" and size > MAX_MOOF_BYTES:
            raise Fmp4Error(f"moof of {size} bytes is larger than {MAX_MOOF_BYTES}")
        if kind == b"ftyp" and (self._offset != 0 or size > 4096):
            raise Fmp4Error("ftyp must be the first box and small")
        if kind == b"mdat":
            if self._pending_moof is None:
                raise Fmp4Error(f"mdat at {self._offset} does not follow a moof")
            offset, moof_size, decode_time, duration = self._pending_moof
            if offset + moof_size != self._offset:
                raise Fmp4Error(f"mdat at {self._offset} does not follow its moof directly")
            if len(self._fragments) >= MAX_FRAGMENTS:
                raise Fmp4Error(f"more than {MAX_FRAGMENTS} fragments")
            self._fragments.append(Fragment(offset, moof_size + size, decode_time, duration))
            self._pending_moof = None
        elif kind != b"moof" and self._pending_moof is not None:
            raise Fmp4Error(f"moof at {self._pending_moof[0]} is not followed by its mdat")

    def _whole_box(self, kind: bytes, box: bytes, start: int) -> None:
        if kind == b"ftyp":
            self._seen_ftyp = True
        elif kind == b"moov":
            if not self._seen_ftyp or self._track is not None:
                raise Fmp4Error("moov must follow ftyp, once")
            self._track = _video_track(box[8:] if box[:4] != b"\x00\x00\x00\x01" else box[16:])
            self._init_size = start + len(box)
        elif kind == b"moof":
            if self._track is None:
                raise Fmp4Error("moof before moov")
            if self._pending_moof is not None:
                raise Fmp4Error("two moof boxes without an mdat between them")
            track_id, _, trex_duration = self._track
            body = box[8:] if box[:4] != b"\x00\x00\x00\x01" else box[16:]
            decode_time, duration = _fragment_timing(body, track_id, trex_duration)
            self._pending_moof = (start, len(box), decode_time, duration)

    def pass_over(self, n: int) -> None:
        """Account for ``n`` bytes of the box being skipped without reading them (random access)."""
        if n > self._skip or self._buffer:
            raise Fmp4Error("pass_over: not inside a skipped box")
        self._skip -= n
        self._offset += n

    def finish(self) -> Fmp4Layout:
        if self._skip:
            raise Fmp4Error(f"the file ends {self._skip} bytes inside a box")
        if self._buffer:
            raise Fmp4Error(f"the file ends inside a box ({len(self._buffer)} bytes left over)")
        if self._track is None:
            raise Fmp4Error("no moov: not an initialised fragmented MP4")
        if self._pending_moof is not None:
            raise Fmp4Error("the last moof has no mdat")
        if not self._fragments:
            raise Fmp4Error("no complete fragment")
        return Fmp4Layout(self._init_size, self._track[1], tuple(self._fragments), self._offset)


def scan_at(read: Callable[[int, int], bytes], size: int) -> Fmp4Layout:
    """The layout of a file of ``size`` bytes read at random (``read(offset, length)``): only box headers,
    ``ftyp``, ``moov`` and each ``moof`` are read, never a payload of ``mdat``."""
    scanner = Fmp4Scanner()
    pos = 0
    while pos < size:
        head = read(pos, min(16, size - pos))
        if len(head) < 8:
            raise Fmp4Error(f"the file ends inside a box header at {pos}")
        box_size, kind = struct.unpack_from(">I4s", head, 0)
        header = 8
        if box_size == 1:
            if len(head) < 16:
                raise Fmp4Error(f"the file ends inside a box header at {pos}")
            (box_size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        if box_size < header or pos + box_size > size:
            raise Fmp4Error(f"box {bytes(kind)!r} at {pos}: size {box_size} does not fit the file")
        if Fmp4Scanner._needs_whole(bytes(kind)):
            limit = MAX_MOOV_BYTES if kind == b"moov" else MAX_MOOF_BYTES
            if box_size > limit:
                raise Fmp4Error(f"{bytes(kind)!r} of {box_size} bytes is larger than {limit}")
            scanner.feed(read(pos, box_size))
        else:
            scanner.feed(head[:header])
            scanner.pass_over(box_size - header)
        pos += box_size
    return scanner.finish()


def scan(data: bytes) -> Fmp4Layout:
    """The layout of a whole file held in memory."""
    scanner = Fmp4Scanner()
    scanner.feed(data)
    return scanner.finish()
