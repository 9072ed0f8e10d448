"""Gap tracking: a stream whose highest seq is above its contiguous high-water mark for longer than a timeout
gets a signed ``resend`` request for the missing ranges (repeated at most once per interval)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.sync.control import Resend
from server.db.sync import SyncInbox, SyncStream

MAX_RANGES = 50


def missing_ranges(
    session: Session, device_id: str, epoch: str, hwm: int, max_seq: int
) -> list[tuple[int, int]]:
    """Inclusive ranges of seqs in (hwm, max_seq] that the inbox does not hold."""
    have = session.scalars(
        select(SyncInbox.seq)
        .where(SyncInbox.device_id == device_id, SyncInbox.epoch == epoch, SyncInbox.seq > hwm)
        .where(SyncInbox.seq <= max_seq)
        .order_by(SyncInbox.seq)
    ).all()
    ranges: list[tuple[int, int]] = []
    expected = hwm + 1
    for seq in [*have, max_seq + 1]:
        if seq > expected:
            ranges.append((expected, seq - 1))
            if len(ranges) >= MAX_RANGES:
                break
        expected = seq + 1
    return ranges


def due_resends(session: Session, now: datetime, gap_timeout: float, interval: float) -> list[Resend]:
    """Resend requests for gaps older than ``gap_timeout`` s, not asked for in the last ``interval`` s."""
    out: list[Resend] = []
    streams = session.scalars(
        select(SyncStream).where(
            SyncStream.gap_since.is_not(None), SyncStream.gap_since <= now - timedelta(seconds=gap_timeout)
        )
    ).all()
    for stream in streams:
        if stream.last_resend_at is not None and stream.last_resend_at > now - timedelta(seconds=interval):
            continue
        ranges = missing_ranges(session, stream.device_id, stream.epoch, stream.hwm, stream.max_seq)
        if not ranges:
            continue
        stream.last_resend_at = now
        stream.resend_requests += 1
        out.append(Resend(dev=stream.device_id, epoch=stream.epoch, ranges=ranges, ts=now.isoformat()))
    return out
