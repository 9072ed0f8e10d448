"""The recorder's database index stamps what it queues for sync with the clock it was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.recorder.index import DatabaseIndex
from edge.recorder.journal import RecordingGap
from edge.sync.outbox import OutboxRecord

T0 = datetime(2025, 1, 6, 7, 30, tzinfo=UTC)  # far from wall time: a wall-clock stamp would differ


def test_a_gap_is_queued_at_the_index_clocks_time(device_sessions: sessionmaker[Session]) -> None:
    clock = FakeClock(T0)
    index = DatabaseIndex(device_sessions, "DEV-1", clock)
    clock.advance(90)
    gap = RecordingGap("gap-1", "2025-01-06T07:00:00.000Z", "2025-01-06T07:01:00.000Z", "power_loss", 3, 4)
    index.gap_recorded(gap)
    with device_sessions() as session:
        stamped = session.scalars(
            select(OutboxRecord.created_at).where(OutboxRecord.record_type == "recording_gap")
        ).all()
    assert stamped == [T0 + timedelta(seconds=90)]
