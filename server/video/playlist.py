"""One HLS playlist (RFC 8216, version 7) over a device's stored fMP4 segments, so a browser plays a stretch
of footage as one stream without anything being re-encoded:

- each stored file: ``#EXT-X-MAP`` with the byte range of its ``ftyp`` + ``moov``, ``#EXT-X-PROGRAM-DATE-TIME``
  (the wall clock of its first frame), then its fragments as ``#EXT-X-BYTERANGE`` media segments
  (consecutive fragments grouped to about ``CHUNK_SECONDS``), each with ``#EXTINF`` (its media duration;
  the wall clock of each follows from the file's and the durations before it);
- ``#EXT-X-DISCONTINUITY`` before every file but the first: each file starts its own timeline (decode time 0)
  with its own initialisation data, and between some files there is a gap. The player joins them; the
  page draws the gaps itself (players collapse them).

``make_playlist`` is pure; ``stored_layouts`` reads the rows and makes a layout where one is missing
(``server.video.fmp4.scan_at``: box headers and ``moof`` boxes only), keeping it for next time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.video import VideoSegment
from server.video.fmp4 import Fmp4Error, Fmp4Layout, Fragment, scan_at
from server.video.storage import StoreUnavailable, VideoStore

CHUNK_SECONDS = 4.0
MAX_PLAYLIST_SEGMENTS = 2000  # 33 h of 60-s segments


@dataclass(frozen=True)
class StoredSegment:
    device_id: str
    seq: int
    start: datetime
    layout: Fmp4Layout


@dataclass(frozen=True)
class Chunk:
    start: datetime  # wall clock of its first frame
    duration_s: float
    offset: int
    length: int


def chunks(segment: StoredSegment, chunk_seconds: float = CHUNK_SECONDS) -> list[Chunk]:
    """The segment's fragments grouped into media segments of about ``chunk_seconds``."""
    layout = segment.layout
    origin = layout.fragments[0].decode_time
    out: list[Chunk] = []
    scale = layout.timescale
    limit = chunk_seconds * scale
    first: Fragment | None = None
    acc = 0
    for fragment in layout.fragments:
        if first is None:
            first, acc = fragment, 0
        acc += fragment.duration
        if acc >= limit:
            at = segment.start + timedelta(seconds=(first.decode_time - origin) / scale)
            out.append(Chunk(at, acc / scale, first.offset, fragment.offset + fragment.size - first.offset))
            first = None
    if first is not None:
        last = layout.fragments[-1]
        at = segment.start + timedelta(seconds=(first.decode_time - origin) / scale)
        out.append(Chunk(at, acc / scale, first.offset, last.offset + last.size - first.offset))
    return out


def _pdt(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def make_playlist(
    segments: Sequence[StoredSegment], content_url: Callable[[str, int], str], chunk_seconds: float = CHUNK_SECONDS
) -> str:
    """The playlist text (see the module docstring); ``content_url(device, seq)`` names each file."""
    body: list[str] = []
    longest = 1.0
    for n, segment in enumerate(sorted(segments, key=lambda s: (s.start, s.seq))):
        url = content_url(segment.device_id, segment.seq)
        if n:
            body.append("#EXT-X-DISCONTINUITY")
        body.append(f'#EXT-X-MAP:URI="{url}",BYTERANGE="{segment.layout.init_size}@0"')
        parts = chunks(segment, chunk_seconds)
        body.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(parts[0].start)}")
        for chunk in parts:
            longest = max(longest, chunk.duration_s)
            body.append(f"#EXTINF:{chunk.duration_s:.3f},\n#EXT-X-BYTERANGE:{chunk.length}@{chunk.offset}\n{url}")
    head = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f"#EXT-X-TARGETDURATION:{math.ceil(longest)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-DISCONTINUITY-SEQUENCE:0",
    ]
    return "\n".join([*head, *body, "#EXT-X-ENDLIST", ""])


def layout_of(store: VideoStore, row: VideoSegment) -> Fmp4Layout:
    """The segment's layout, read from its stored object (box headers and moof boxes only)."""
    size = store.committed_size(row.storage_key)
    if size is None:
        raise Fmp4Error("the stored object is missing")
    with store.open_committed(row.storage_key) as fh:

        def read(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        return scan_at(read, size)


def stored_layouts(
    session: Session, store: VideoStore, device_id: str, start: datetime, end: datetime
) -> tuple[list[StoredSegment], list[tuple[int, str]]]:
    """The device's stored segments overlapping ``start``..``end`` with their layouts (made and kept where
    missing), and the segments that could not be described (seq, reason): those are left out. A store that fails
    raises ``StoreUnavailable``."""
    rows = list(
        session.scalars(
            select(VideoSegment)
            .where(
                VideoSegment.device_id == device_id,
                VideoSegment.state == "stored",
                VideoSegment.started_at < end,
                VideoSegment.ended_at > start,
            )
            .order_by(VideoSegment.started_at, VideoSegment.seq)
            .limit(MAX_PLAYLIST_SEGMENTS)
        )
    )
    found: list[StoredSegment] = []
    refused: list[tuple[int, str]] = []
    for row in rows:
        try:
            if row.layout_json is None:
                layout = layout_of(store, row)
                row.layout_json = json.dumps(layout.to_json(), separators=(",", ":"))
            else:
                layout = Fmp4Layout.from_json(json.loads(row.layout_json))
        except StoreUnavailable:
            raise  # the store failed, not the segment: the caller answers 503, never a playlist without it
        except (Fmp4Error, OSError, ValueError, KeyError, TypeError) as exc:
            refused.append((row.seq, str(exc)[:200]))
            continue
        found.append(StoredSegment(row.device_id, row.seq, row.started_at, layout))
    return found, refused
