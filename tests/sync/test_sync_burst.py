"""Burst through a stock broker: a device that was offline for a long time comes back with N queued records
(the issue's figure is 20 000; ``PATROLKIT_SYNC_BURST_N``) and drains them through a Mosquitto with its stock
configuration, which silently drops what exceeds ``max_queued_messages`` (1000) per client. The sender's
window keeps far fewer messages than that in flight, so nothing is lost: the server holds every record once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sync_harness import SyncRig, fill_outbox, on_private_mosquitto, wait_for

from server.db.sync import SyncConflict, SyncDeadLetter, SyncInbox

N = int(os.environ.get("PATROLKIT_SYNC_BURST_N", "20000"))


@pytest.mark.slow
def test_burst_after_a_long_offline_period_through_a_stock_mosquitto_loses_nothing(
    rig: SyncRig, tmp_path: Path
) -> None:
    with on_private_mosquitto(rig, tmp_path) as (local, broker):
        local.worker()
        broker.stop()  # the network goes away: the ingest and the device are cut off
        fill_outbox(rig.device, N, prefix="B")  # a long shift offline
        sender = local.sender()  # default window and batch; it cannot connect yet
        assert not sender.online
        broker.start()  # back online: a fresh broker (no persistence) with stock limits
        wait_for(lambda: rig.pending() == 0, timeout=240, what=f"{N} records drained")
        with rig.server() as session:
            stored = session.scalar(select(func.count()).select_from(SyncInbox))
            distinct = session.scalar(select(func.count(func.distinct(SyncInbox.seq))))
            first, last = session.execute(select(func.min(SyncInbox.seq), func.max(SyncInbox.seq))).one()
            dead = session.scalar(select(func.count()).select_from(SyncDeadLetter))
            conflicts = session.scalar(select(func.count()).select_from(SyncConflict))
        assert (stored, distinct, first, last) == (N, N, 1, N)
        assert (dead, conflicts) == (0, 0)
        assert sender.acked == N
