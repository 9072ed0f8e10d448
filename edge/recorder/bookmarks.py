"""Bookmarks: other parts of the app mark a time range of the recording (a stop, a payment, an own-card check).

A bookmark never touches the video; it makes the covered segments upload first and lets a supervisor find
the footage by ``ref`` (e.g. the protocol number). It is synced in the caller's transaction.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.manifest import format_utc
from edge.db.recording import Bookmark, RecordingSegment
from edge.sync.outbox import enqueue

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def add_bookmark(
    session: Session, kind: str, ref: str, start: datetime, end: datetime, *, now: datetime
) -> str:
    """Mark ``start``..``end`` with ``kind`` (e.g. "stop", "payment", "own_card_check") and ``ref``; returns its
    id. ``now`` (the caller's clock) is when it was made."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"bookmark kind {kind!r}: expected lowercase letters, digits and _ (max 32)")
    if not ref or len(ref) > 32:
        raise ValueError("bookmark ref: expected 1-32 characters (a protocol number)")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("bookmark times must be timezone-aware")
    if end < start:
        raise ValueError("bookmark end is before its start")
    bookmark_id = str(uuid.uuid4())
    session.add(Bookmark(id=bookmark_id, kind=kind, ref=ref, started_at=start, ended_at=end, created_at=now))
    enqueue(
        session,
        "bookmark",
        {
            "bookmark_id": bookmark_id,
            "started_at": format_utc(start),
            "ended_at": format_utc(end),
            "label": kind,
            "protocol_number": ref,
        },
        now=now,
    )
    return bookmark_id


def bookmarked_seqs(session: Session) -> set[int]:
    """Sequence numbers of segments that overlap any bookmark."""
    rows = session.execute(
        select(RecordingSegment.seq)
        .join(
            Bookmark,
            (Bookmark.started_at < RecordingSegment.ended_at)
            & (Bookmark.ended_at >= RecordingSegment.started_at),
        )
        .distinct()
    )
    return {seq for (seq,) in rows}
