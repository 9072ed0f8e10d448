"""Which footage belongs to a stop, and what is known of every moment of it.

The footage window of a stop is, per device, one continuous stretch: from its first bookmark's start to its
last bookmark's end, ± ``BOOKMARK_MARGIN`` (without a bookmark: ``OFFENCE_BEFORE`` the offence to
``OFFENCE_AFTER`` it), at most ``MAX_WINDOW`` long. Every moment of it is one of:

- a segment: uploaded (playable), uploading, recorded but not uploaded yet (known from its synced record), or
  deleted by retention (its row kept as a tombstone);
- a recording gap the device recorded, with its cause;
- a hole no record explains, classified: "recorder not started yet" (the next segment opens a new recording
  and no gap record covers the time before it), "not synced yet" (nothing the device recorded after it has
  reached the server yet), or "no record explains it".

``uncovered`` and ``classify_holes`` are pure; ``footage_for`` reads the database.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.protocols import Protocol
from server.db.sync import Bookmark, RecordingGap, SegmentMeta
from server.db.video import VideoSegment

BOOKMARK_MARGIN = timedelta(minutes=2)
OFFENCE_BEFORE = timedelta(minutes=5)
OFFENCE_AFTER = timedelta(minutes=10)
MAX_WINDOW = timedelta(hours=2)
MAX_SEGMENTS_PER_WINDOW = 480
CONTIGUOUS = timedelta(seconds=1)  # segment joins closer than this are not holes


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


class HoleKind(enum.StrEnum):
    NOT_STARTED = "not_started"
    NOT_SYNCED = "not_synced"
    UNEXPLAINED = "unexplained"


HOLE_WORDS = {
    HoleKind.NOT_STARTED: "регистратор ещё не был запущен / recorder not started yet",
    HoleKind.NOT_SYNCED: "сведения ещё не синхронизированы / not synced yet",
    HoleKind.UNEXPLAINED: "нет записи, причина не сообщена / nothing recorded and no cause reported",
}


@dataclass(frozen=True)
class Hole:
    start: datetime
    end: datetime
    kind: HoleKind
    note: str = ""


@dataclass
class FootageSegment:
    device_id: str
    seq: int
    started_at: datetime
    ended_at: datetime
    status: str  # stored | uploading | not_uploaded | deleted (by retention: the row is a tombstone)
    size_bytes: int
    sha256: str
    recording_id: str | None
    check_verdict: str | None  # latest verification of the stored object
    checked_at: datetime | None

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
    holes: list[Hole] = field(default_factory=list)
    truncated: bool = False
    around_offence: bool = False

    @property
    def playable(self) -> bool:
        return any(s.playable for s in self.segments)


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


@dataclass(frozen=True)
class Neighbour:
    """A segment next to a hole: when it starts or ends, and its recording."""

    at: datetime
    recording_id: str | None


def classify_holes(
    holes: Sequence[Interval],
    segments: Sequence[FootageSegment],
    before: Neighbour | None,
    after: Neighbour | None,
) -> list[Hole]:
    """Each hole's kind (see the module docstring). ``segments`` are the window's, in time order;
    ``before`` is the device's last segment ending before the window (its end), ``after`` its first
    segment starting after the window (its start)."""
    out = []
    for hole in holes:
        prev = next((s for s in reversed(segments) if s.ended_at <= hole.start + CONTIGUOUS), None)
        nxt = next((s for s in segments if s.started_at >= hole.end - CONTIGUOUS), None)
        prev_rec = prev.recording_id if prev else (before.recording_id if before else None)
        has_prev = prev is not None or before is not None
        if nxt is None and after is None:
            out.append(Hole(hole.start, hole.end, HoleKind.NOT_SYNCED))
            continue
        next_rec = nxt.recording_id if nxt else (after.recording_id if after else None)
        next_at = nxt.started_at if nxt else (after.at if after else hole.end)
        new_recording = next_rec is not None and (not has_prev or (prev_rec is not None and prev_rec != next_rec))
        if new_recording:
            out.append(Hole(hole.start, hole.end, HoleKind.NOT_STARTED, f"запись началась / recording began {next_at.isoformat()}"))
        else:
            out.append(Hole(hole.start, hole.end, HoleKind.UNEXPLAINED))
    return out


def stop_window(protocol: Protocol, bookmarks: Sequence[Bookmark], margin: timedelta = BOOKMARK_MARGIN) -> list[tuple[str, Interval, list[Bookmark]]]:
    """Per device, the one window that covers all the stop's bookmarks (or the offence time)."""
    by_device: dict[str, list[Bookmark]] = {}
    for b in bookmarks:
        by_device.setdefault(b.device_id, []).append(b)
    if not by_device:
        at = protocol.offence_at
        return [(protocol.device_id, Interval(at - OFFENCE_BEFORE, at + OFFENCE_AFTER), [])]
    out = []
    for device_id, marks in sorted(by_device.items()):
        start = min(b.started_at for b in marks) - margin
        end = max(max(b.started_at, b.ended_at or b.started_at) for b in marks) + margin
        out.append((device_id, Interval(start, min(end, start + MAX_WINDOW)), sorted(marks, key=lambda b: b.started_at)))
    return out


def _segments(session: Session, device_id: str, iv: Interval) -> tuple[list[FootageSegment], bool]:
    metas = {
        m.seq: m
        for m in session.scalars(
            select(SegmentMeta)
            .where(SegmentMeta.device_id == device_id, SegmentMeta.started_at < iv.end, SegmentMeta.ended_at > iv.start)
            .order_by(SegmentMeta.started_at)
            .limit(MAX_SEGMENTS_PER_WINDOW + 1)
        )
    }
    videos = {
        v.seq: v
        for v in session.scalars(
            select(VideoSegment)
            .where(VideoSegment.device_id == device_id, VideoSegment.started_at < iv.end, VideoSegment.ended_at > iv.start)
            .order_by(VideoSegment.started_at)
            .limit(MAX_SEGMENTS_PER_WINDOW + 1)
        )
    }
    found: list[FootageSegment] = []
    for seq in sorted(set(metas) | set(videos)):
        meta, video = metas.get(seq), videos.get(seq)
        recording = meta.recording_id if meta else None
        if video is not None:
            status = video.state if video.state in ("stored", "deleted") else "uploading"
            found.append(FootageSegment(device_id, seq, video.started_at, video.ended_at, status, video.size,
                                        video.sha256, recording, video.check_verdict, video.checked_at))  # fmt: skip
        elif meta is not None:
            found.append(FootageSegment(device_id, seq, meta.started_at, meta.ended_at, "not_uploaded",
                                        meta.size_bytes, meta.sha256, recording, None, None))  # fmt: skip
    found.sort(key=lambda s: (s.started_at, s.seq))
    truncated = len(found) > MAX_SEGMENTS_PER_WINDOW
    return found[:MAX_SEGMENTS_PER_WINDOW], truncated


def _neighbours(session: Session, device_id: str, iv: Interval) -> tuple[Neighbour | None, Neighbour | None]:
    before = session.execute(
        select(SegmentMeta.ended_at, SegmentMeta.recording_id)
        .where(SegmentMeta.device_id == device_id, SegmentMeta.started_at < iv.start)
        .order_by(SegmentMeta.started_at.desc())
        .limit(1)
    ).first()
    after = session.execute(
        select(SegmentMeta.started_at, SegmentMeta.recording_id)
        .where(SegmentMeta.device_id == device_id, SegmentMeta.started_at >= iv.end)
        .order_by(SegmentMeta.started_at)
        .limit(1)
    ).first()
    if after is None:  # uploaded footage without its synced record still shows the device recorded later
        stored = session.scalar(
            select(VideoSegment.started_at).where(VideoSegment.device_id == device_id, VideoSegment.started_at >= iv.end)
            .order_by(VideoSegment.started_at).limit(1)
        )  # fmt: skip
        after_n = Neighbour(stored, None) if stored is not None else None
    else:
        after_n = Neighbour(after[0], after[1])
    return (Neighbour(before[0], before[1]) if before else None), after_n


def footage_window(
    session: Session, device_id: str, iv: Interval, bookmarks: list[Bookmark], around_offence: bool
) -> FootageWindow:
    segments, truncated = _segments(session, device_id, iv)
    gaps = list(
        session.scalars(
            select(RecordingGap)
            .where(RecordingGap.device_id == device_id, RecordingGap.started_at < iv.end, RecordingGap.ended_at > iv.start)
            .order_by(RecordingGap.started_at)
            .limit(MAX_SEGMENTS_PER_WINDOW)
        )
    )
    covered = [Interval(s.started_at, s.ended_at) for s in segments] + [Interval(g.started_at, g.ended_at) for g in gaps]
    holes: list[Hole] = []
    if not truncated:
        before, after = _neighbours(session, device_id, iv)
        holes = classify_holes(uncovered(iv, covered), segments, before, after)
    return FootageWindow(device_id, iv.start, iv.end, bookmarks, segments, gaps, holes, truncated, around_offence)


def footage_for(session: Session, protocol: Protocol, bookmarks: Sequence[Bookmark]) -> list[FootageWindow]:
    """The footage windows of a stop, one per device (see the module docstring)."""
    return [
        footage_window(session, device_id, iv, marks, not marks)
        for device_id, iv, marks in stop_window(protocol, bookmarks)
    ]
