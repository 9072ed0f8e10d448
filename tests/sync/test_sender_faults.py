"""A fault in the sync sender's step (a locked or failing device database, a bug) must not end syncing for
the rest of the shift: the sender logs it, waits, and carries on, and the hello it could not send goes out.
While it fails, the device's health check says so (fleet monitoring sees it), and clears once it recovers."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sync_harness import SyncRig, fill_outbox, wait_for

from edge.config import load_edge_config
from edge.http import create_device_app
from edge.identity import DeviceIdentity
from server.db.sync import SyncStream


def test_the_sender_survives_failing_steps_reports_them_and_still_greets_and_drains(
    rig: SyncRig, tmp_path: Path
) -> None:
    engine = rig.device.kw["bind"]
    disk_failing = threading.Event()
    disk_failing.set()

    def disk_error_on_greet(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        # the device database fails the sender's greeting (reading the epoch), as a failing disk would
        on_greet = threading.current_thread().name == "sync-sender" and "FROM device_meta" in statement
        if on_greet and disk_failing.is_set():
            raise sqlite3.OperationalError("disk I/O error")

    event.listen(engine, "before_cursor_execute", disk_error_on_greet)
    try:
        rig.worker()
        sender = rig.sender(window=50, batch=10)
        config = load_edge_config(None, {"PATROLKIT_EDGE__DEVICE__DATA_DIR": str(tmp_path)})
        identity = DeviceIdentity(rig.dev.device_id, Ed25519PrivateKey.generate())
        http = TestClient(create_device_app(config, identity, rig.device, sender))

        wait_for(lambda: sender.step_errors >= 2, timeout=30, what="two failed steps")
        health = http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["sync"] == "error: OperationalError: disk I/O error"
        sync = http.get("/status").json()["sync"]
        assert sync["last_error"] == "OperationalError: disk I/O error" and sync["step_errors"] >= 2

        disk_failing.clear()  # the disk recovers: the hello goes out, the server knows the stream

        def stream_known() -> bool:
            with rig.server() as session:
                hwm = session.scalar(select(SyncStream.hwm).where(SyncStream.device_id == rig.dev.device_id))
            return hwm is not None

        wait_for(stream_known, timeout=40, what="the hello, once the database answered")
        fill_outbox(rig.device, 40)  # and records queued afterwards still reach the server
        wait_for(lambda: rig.pending() == 0, what="outbox drained after the failures")
        assert sender.acked == 40
        assert http.get("/healthz").status_code == 200
        sync = http.get("/status").json()["sync"]
        assert (sync["online"], sync["acked"], sync["last_error"]) == (True, 40, None)
    finally:
        event.remove(engine, "before_cursor_execute", disk_error_on_greet)
