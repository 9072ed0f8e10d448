"""The sender's read of the outbox: sealed pending rows that are due, most urgent first (payments and
protocols before segments, then by seq), read in passes that resume after the last row handed out."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import T0, fill_outbox, protocol_body

from core.clock import FakeClock
from core.sync.signing import Signer
from edge.sync.outbox import OutboxRecord, due_rows, enqueue, enqueue_many, postpone, seal_pending

NOW = T0.timestamp() + 1.0


def _sealed(device: sessionmaker[Session], n: int) -> None:
    fill_outbox(device, n)  # a protocol and a payment (priority 0) per 10 records, segments (4) between
    with device() as session, session.begin():
        seal_pending(session, "PD-due", Signer.generate(), limit=10_000)


def test_a_pass_hands_out_every_due_row_once_by_priority_then_seq(device_sessions: sessionmaker[Session]) -> None:
    _sealed(device_sessions, 95)
    handed: list[tuple[int, int]] = []
    after = None
    with device_sessions() as session:
        while rows := due_rows(session, NOW, set(), 7, after=after):
            assert len(rows) <= 7
            handed += [(r.priority, r.seq) for r in rows]
            after = handed[-1]
    assert handed == sorted(handed) and len(set(handed)) == 95
    urgent = [seq for prio, seq in handed if prio == 0]
    assert len(urgent) == 20 and handed[:20] == [(0, s) for s in urgent]  # payments and protocols first
    with device_sessions() as session:
        row = due_rows(session, NOW, set(), 1)[0]
    assert (row.seq, row.stream, len(row.sha256), len(row.epoch)) == (1, "protocol", 64, 32)
    assert row.payload.startswith(b"{")


def test_rows_in_flight_unsealed_or_backed_off_are_not_handed_out(device_sessions: sessionmaker[Session]) -> None:
    _sealed(device_sessions, 20)
    with device_sessions() as session, session.begin():
        unsealed = enqueue(session, "protocol", protocol_body("LATE"), now=T0)
        postpone(session, [3, 4], {3: 60.0, 4: 60.0}, NOW)  # an ack timed out: next attempt in a minute
    with device_sessions() as session:
        seqs = [r.seq for r in due_rows(session, NOW, {1, 2}, 100)]
        later = [r.seq for r in due_rows(session, NOW + 61.0, set(), 100)]
    assert unsealed not in seqs and {1, 2, 3, 4}.isdisjoint(seqs) and len(seqs) == 16
    assert {3, 4} <= set(later) and unsealed not in later
    with device_sessions() as session:  # the limit counts rows handed out, not the ones skipped in flight
        assert len(due_rows(session, NOW, {1, 2}, 5)) == 5


def test_a_record_is_stamped_with_the_callers_clock_in_the_row_and_the_signed_payload(
    device_sessions: sessionmaker[Session],
) -> None:
    clock = FakeClock(T0 - timedelta(days=400))  # far from wall time: a wall-clock stamp would differ
    with device_sessions() as session, session.begin():
        one = enqueue(session, "protocol", protocol_body("CLOCK-1"), now=clock.now())
        clock.advance(5)
        enqueue_many(session, [("protocol", protocol_body("CLOCK-2"))], now=clock.now())
        seal_pending(session, "PD-clock", Signer.generate(), limit=10)
    with device_sessions() as session:
        stamps = session.scalars(select(OutboxRecord.created_at).order_by(OutboxRecord.seq)).all()
        rows = due_rows(session, NOW, set(), 10)
    assert stamps == [T0 - timedelta(days=400), T0 - timedelta(days=400, seconds=-5)]
    signed = {r.seq: json.loads(r.payload)["ts"] for r in rows}
    assert signed[one] == (T0 - timedelta(days=400)).isoformat()
