"""Which footage belongs to a protocol: the time ranges of its bookmarks (± a margin, overlapping ranges
merged), the device's segments in each range (uploaded and playable, uploading, or known from the synced
metadata only), the recording gaps there with their cause, and stretches that no segment or gap explains.

``merge_windows`` and ``uncovered`` are pure; ``footage_for`` reads the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.protocols import Protocol
from server.db.sync import Bookmark, RecordingGap, SegmentMeta
from server.db.video import VideoSegment

BOOKMARK_MARGIN = timedelta(minutes=2)
# Without any bookmark, the footage around the offence time is shown instead.
OFFENCE_BEFORE = timedelta(minutes=5)
OFFENCE_AFTER = timedelta(minutes=10)
MAX_SEGMENTS_PER_WINDOW = 240
CONTIGUOUS = timedelta(seconds=1)  # segment joins closer than this are not holes


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


@dataclass
class FootageSegment:
    device_id: str
    seq: int
    started_at: datetime
    ended_at: datetime
    status: str  # stored | uploading | not_uploaded
    size_bytes: int
    sha256: str
    hash_agrees: (
        bool | None
    )  # synced metadata and uploaded manifest name the same SHA-256 (None: one is missing)
    linked_prev: bool | None  # the store found its predecessor in the hash chain
    repaired: bool | None

    @property
    def playable(self) -> bool:
        return self.status == "stored"


@dataclass
class FootageWindow:
    device_id: str
    start: datetime
    end: datetime
    bookmarks: list[Bookmark] = field(default_factory=list)
    segments: list[FootageSegment] = field(default_factory=list)
    gaps: list[RecordingGap] = field(default_factory=list)
    unexplained: list[Interval] = field(default_factory=list)
    truncated: bool = False
    around_offence: bool = False


def merge_windows(ranges: Iterable[tuple[str, Interval]]) -> list[tuple[str, Interval, list[int]]]:
    """Per device, overlapping or touching intervals merged; each result names the input positions it covers."""
    indexed = sorted(enumerate(ranges), key=lambda p: (p[1][0], p[1][1].start))
    merged: list[tuple[str, Interval, list[int]]] = []
    for pos, (device, iv) in indexed:
        if merged and merged[-1][0] == device and iv.start <= merged[-1][1].end:
            last_dev, last, members = merged[-1]
            merged[-1] = (last_dev, Interval(last.start, max(last.end, iv.end)), [*members, pos])
        else:
            merged.append((device, iv, [pos]))
    return merged


def uncovered(window: Interval, covered: Sequence[Interval]) -> list[Interval]:
    """Parts of ``window`` longer than ``CONTIGUOUS`` that no interval of ``covered`` touches."""
    holes: list[Interval] = []
    cursor = window.start
    for iv in sorted(covered, key=lambda i: i.start):
        if iv.end <= cursor:
            continue
        if iv.start - cursor > CONTIGUOUS:
            holes.append(Interval(cursor, min(iv.start, window.end)))
        cursor = max(cursor, iv.end)
        if cursor >= window.end:
            break
    if window.end - cursor > CONTIGUOUS:
        holes.append(Interval(cursor, window.end))
    return [h for h in holes if h.end > h.start]


def _segments(session: Session, device_id: str, iv: Interval) -> tuple[list[FootageSegment], bool]:
    metas = {
        m.idx: m
        for m in session.scalars(
            select(SegmentMeta)
            .where(
                SegmentMeta.device_id == device_id,
                SegmentMeta.started_at < iv.end,
                SegmentMeta.ended_at > iv.start,
            )
            .order_by(SegmentMeta.started_at)
            .limit(MAX_SEGMENTS_PER_WINDOW + 1)
        )
    }
    videos = {
        v.seq: v
        for v in session.scalars(
            select(VideoSegment)
            .where(
                VideoSegment.device_id == device_id,
                VideoSegment.start_utc < iv.end,
                VideoSegment.end_utc > iv.start,
            )
            .order_by(VideoSegment.start_utc)
            .limit(MAX_SEGMENTS_PER_WINDOW + 1)
        )
    }
    found: list[FootageSegment] = []
    for seq in sorted(set(metas) | set(videos)):
        meta, video = metas.get(seq), videos.get(seq)
        if video is not None:
            status = "stored" if video.state == "stored" else "uploading"
            found.append(
                FootageSegment(
                    device_id,
                    seq,
                    video.start_utc,
                    video.end_utc,
                    status,
                    video.size,
                    video.sha256,
                    None if meta is None else meta.sha256 == video.sha256,
                    video.linked_prev,
                    video.repaired,
                )
            )
        elif meta is not None:
            found.append(
                FootageSegment(
                    device_id,
                    seq,
                    meta.started_at,
                    meta.ended_at,
                    "not_uploaded",
                    meta.size_bytes,
                    meta.sha256,
                    None,
                    None,
                    None,
                )
            )
    found.sort(key=lambda s: (s.started_at, s.seq))
    truncated = len(found) > MAX_SEGMENTS_PER_WINDOW
    return found[:MAX_SEGMENTS_PER_WINDOW], truncated


def footage_for(
    session: Session, protocol: Protocol, bookmarks: Sequence[Bookmark], margin: timedelta = BOOKMARK_MARGIN
) -> list[FootageWindow]:
    """The footage windows of a protocol, in time order (see the module docstring)."""
    ranges: list[tuple[str, Interval]] = [
        (b.device_id, Interval(b.at - margin, max(b.at, b.ended_at or b.at) + margin)) for b in bookmarks
    ]
    around_offence = not ranges
    if around_offence:
        at = protocol.offence_at
        ranges = [(protocol.device_id, Interval(at - OFFENCE_BEFORE, at + OFFENCE_AFTER))]
    windows: list[FootageWindow] = []
    for device_id, iv, members in merge_windows(ranges):
        segments, truncated = _segments(session, device_id, iv)
        gaps = list(
            session.scalars(
                select(RecordingGap)
                .where(
                    RecordingGap.device_id == device_id,
                    RecordingGap.started_at < iv.end,
                    RecordingGap.ended_at > iv.start,
                )
                .order_by(RecordingGap.started_at)
                .limit(MAX_SEGMENTS_PER_WINDOW)
            )
        )
        covered = [Interval(s.started_at, s.ended_at) for s in segments]
        covered += [Interval(g.started_at, g.ended_at) for g in gaps]
        windows.append(
            FootageWindow(
                device_id,
                iv.start,
                iv.end,
                [bookmarks[i] for i in members] if not around_offence else [],
                segments,
                gaps,
                [] if truncated else uncovered(iv, covered),
                truncated,
                around_offence,
            )
        )
    return windows
