"""The sender's read of the outbox: sealed pending rows that are due, most urgent first (payments and
protocols before segments, then by seq), read in passes that resume after the last row handed out."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from sync_harness import T0, fill_outbox, protocol_body

from core.sync.signing import Signer
from edge.sync.outbox import due_rows, enqueue, postpone, seal_pending

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
