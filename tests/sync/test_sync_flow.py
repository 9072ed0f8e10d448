"""End to end through the broker under test: device outbox → sender → ingest → server DB → signed ack."""

from __future__ import annotations

from sqlalchemy import func, select
from sync_harness import SyncRig, fill_outbox, wait_for

from edge.sync.outbox import OutboxRecord
from server.db.protocols import Payment, Protocol
from server.db.sync import SegmentMeta, SyncInbox, SyncStream


def count(rig: SyncRig, model: object) -> int:
    with rig.server() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_protocols_payments_and_segments_reach_the_server_once_and_free_the_outbox(rig: SyncRig) -> None:
    fill_outbox(rig.device, 300)
    rig.worker()
    sender = rig.sender(window=100, batch=20)
    wait_for(lambda: rig.pending() == 0, what="outbox drained")
    assert count(rig, SyncInbox) == 300
    assert count(rig, Protocol) == 30 and count(rig, Payment) == 30 and count(rig, SegmentMeta) == 240
    with rig.server() as session:
        stream = session.scalars(select(SyncStream)).one()
        assert (stream.hwm, stream.max_seq, stream.gap_since) == (300, 300, None)
    with rig.device() as session:
        states = set(session.scalars(select(OutboxRecord.ack_status)))
    assert states == {"ok"}
    assert sender.acked == 300
