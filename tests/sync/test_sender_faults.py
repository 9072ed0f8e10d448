"""A fault in the sync sender's step (a locked or failing device database, a bug) must not end syncing for
the rest of the shift: the sender logs it, waits, and carries on, and the hello it could not send goes out."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from sqlalchemy import event, select
from sync_harness import SyncRig, fill_outbox, wait_for

from server.db.sync import SyncStream


def test_the_sender_survives_failing_steps_and_still_greets_and_drains(rig: SyncRig) -> None:
    engine = rig.device.kw["bind"]
    failures: list[str] = []

    def disk_error_on_greet(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        # the device database fails the sender's first two greetings (reading the epoch), as a disk would
        on_greet = threading.current_thread().name == "sync-sender" and "FROM device_meta" in statement
        if on_greet and len(failures) < 2:
            failures.append(statement)
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(engine, "before_cursor_execute", disk_error_on_greet)
    try:
        rig.worker()
        sender = rig.sender(window=50, batch=10)
        wait_for(lambda: sender.step_errors == 2, timeout=30, what="two failed steps")

        def stream_known() -> bool:
            with rig.server() as session:
                hwm = session.scalar(select(SyncStream.hwm).where(SyncStream.device_id == rig.dev.device_id))
            return hwm is not None

        wait_for(stream_known, timeout=30, what="the hello, once the database answered")
        fill_outbox(rig.device, 40)  # and records queued afterwards still reach the server
        wait_for(lambda: rig.pending() == 0, what="outbox drained after the failures")
        assert sender.acked == 40 and sender.step_errors == 2
    finally:
        event.remove(engine, "before_cursor_execute", disk_error_on_greet)
