"""``/healthz`` tells the truth about the ingest: 503 while a worker's thread is down or a message has waited
longer than ``stall_s`` for it, 200 again once the watchdog restarted it or the database let it go on. The
thread is killed for real (an exception raised inside it, as a fatal bug would), and the database is blocked
by a real lock held from another connection."""

from __future__ import annotations

import ctypes
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sync_harness import T0, SyncRig, protocol_body, wait_for

from core.clock import FakeClock
from edge.sync.credit import CreditSettings
from edge.sync.outbox import enqueue
from server.app import create_app
from server.config import ServerConfig
from server.db.sync import SyncStream
from server.ingest.supervisor import IngestSupervisor
from server.ingest.worker import IngestWorker


def healthz(client: TestClient) -> tuple[int, dict[str, str]]:
    reply = client.get("/healthz")
    return reply.status_code, reply.json()["checks"]


def app_for(rig: SyncRig, supervisor: IngestSupervisor) -> TestClient:
    app = create_app(ServerConfig(), sessions=rig.server)
    app.state.ingest = supervisor
    return TestClient(app)


def kill_thread(thread: threading.Thread) -> None:
    """Raise SystemExit inside ``thread`` (as a fatal error would), and wait until it has ended."""
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
    thread.join(10)
    assert not thread.is_alive()


def send(rig: SyncRig, number: str) -> None:
    with rig.device() as s, s.begin():
        enqueue(s, "protocol", protocol_body(number), now=T0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread we killed
def test_a_dead_worker_makes_healthz_503_until_the_watchdog_restarts_it(rig: SyncRig) -> None:
    worker = rig.worker()
    supervisor = IngestSupervisor([worker])  # not started: the test runs its check
    client = app_for(rig, supervisor)
    key = f"ingest {worker.settings.client_id}"
    assert healthz(client) == (200, {"database": "ok", key: "ok"})
    kill_thread(worker._thread)  # type: ignore[arg-type]
    status, checks = healthz(client)
    assert (status, checks[key]) == (503, "down: its thread ended")
    assert supervisor.check() == 1 and worker.restarts == 1
    assert healthz(client) == (200, {"database": "ok", key: "ok"})
    send(rig, "AFTER-RESTART")
    rig.sender()
    wait_for(lambda: rig.pending() == 0, timeout=30, what="a record synced by the restarted worker")


@contextmanager
def database_locked(rig: SyncRig) -> Iterator[None]:
    """Hold a write lock on ``sync_inbox`` from another connection (PostgreSQL: LOCK TABLE; SQLite: the
    database's write lock), so the worker's insert waits."""
    engine = rig.server.kw["bind"]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE sync_inbox IN ACCESS EXCLUSIVE MODE"))
            yield
            conn.rollback()
        return
    holder = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_worker_stuck_on_its_input_makes_healthz_503_until_it_moves_again(rig: SyncRig) -> None:
    clock = FakeClock()
    worker: IngestWorker = rig.worker(clock=clock, stall_s=30.0)
    client = app_for(rig, IngestSupervisor([worker]))
    key = f"ingest {worker.settings.client_id}"
    rig.sender(credit=CreditSettings(enabled=False))  # the record itself is the message that waits (no ask first)
    wait_for(lambda: stream_rows(rig) > 0, timeout=30, what="the device's hello handled")
    with database_locked(rig):
        send(rig, "WAITS")
        wait_for(lambda: worker.pending() > 0, timeout=30, what="the record at the worker")
        clock.advance(29)
        assert healthz(client)[0] == 200  # waiting, but not yet too long
        clock.advance(2)
        status, checks = healthz(client)
        assert status == 503 and checks[key].startswith("stalled: a message has waited 31 s")
    wait_for(lambda: rig.pending() == 0, timeout=30, what="the record stored once the lock is gone")
    assert healthz(client) == (200, {"database": "ok", key: "ok"})


def stream_rows(rig: SyncRig) -> int:
    from sqlalchemy import func, select

    with rig.server() as session:
        return int(session.scalar(select(func.count()).select_from(SyncStream)) or 0)


def dead_reasons(rig: SyncRig) -> list[str]:
    from sqlalchemy import select

    from server.db.sync import SyncDeadLetter

    with rig.server() as s:
        return sorted(s.scalars(select(SyncDeadLetter.reason)))


def _stack(thread: threading.Thread) -> list[tuple[str, int]]:
    """The thread's Python frames, innermost first: (function name, line)."""
    assert thread.ident is not None
    frame = sys._current_frames().get(thread.ident)
    out = []
    while frame is not None:
        out.append((frame.f_code.co_name, frame.f_lineno))
        frame = frame.f_back
    return out


def blocked_in_database(thread: threading.Thread, samples: int = 4, gap_s: float = 0.1) -> bool:
    """The thread is inside the worker's commit, not checking a connection out, and has not moved for a while:
    it waits on a lock held elsewhere."""
    first = _stack(thread)
    names = {name for name, _line in first}
    if "_commit" not in names or names & {"_checkout", "do_ping", "_do_ping_w_event"}:
        return False
    for _ in range(samples):
        time.sleep(gap_s)
        if _stack(thread) != first:
            return False
    return True


def kill_while_handling(
    rig: SyncRig, worker: IngestWorker, restart_first: IngestSupervisor | None = None
) -> None:
    """Kill the worker's thread while it holds a message: it waits on a locked database, the exception is
    raised inside it, and it dies as soon as the database lets its statement return. ``restart_first``:
    restart the worker (with this supervisor) once the database is locked, and kill the new thread."""
    with database_locked(rig):
        if restart_first is not None:
            assert restart_first.check() == 1
        thread = worker._thread
        assert thread is not None and thread.ident is not None
        # in its hands, not only queued: a thread killed while it still collects dies holding nothing. A
        # restarted thread takes a held message alone only once it has marked it so: killed before that, it
        # died holding a batch, and the next thread would take the message alone again
        wait_for(
            lambda: bool(worker._in_hand) and (restart_first is None or worker._alone),
            timeout=30, what="a message in the worker's hands",
        )  # fmt: skip
        # and waiting on the locked table: raised anywhere earlier (SQLAlchemy's connection check-out, say), the
        # exception can be replaced by another one raised while cleaning up, and the thread goes on
        wait_for(lambda: blocked_in_database(thread), timeout=30, what="the worker waiting on the locked table")
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
    # on PostgreSQL psycopg first cancels the statement it was waiting on (up to 5 s to reach the server, 5 s
    # more for the statement to end), on a loaded machine slower still: a bound for liveness, not speed
    thread.join(60)
    assert not thread.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the threads we killed
def test_a_message_the_worker_dies_on_is_taken_alone_then_dead_lettered_and_the_device_resends_it(
    rig: SyncRig,
) -> None:
    worker = rig.worker()
    supervisor = IngestSupervisor([worker])
    # no credit ask: the record's message is the only one the worker can be holding when it is killed
    rig.sender(ack_timeout_s=2.0, backoff_max_s=2.0, credit=CreditSettings(enabled=False))
    # its connect's hello and sync_ref handled: the record is then the one message in the worker's hands
    wait_for(lambda: worker.processed >= 2 and worker.pending() == 0, timeout=30, what="the device's hello handled")
    send(rig, "DIES-TWICE")
    kill_while_handling(rig, worker)  # died holding a batch: the next thread takes its messages one by one
    kill_while_handling(rig, worker, restart_first=supervisor)  # and died again, on that message alone
    assert supervisor.check() == 1 and worker.restarts == 2
    wait_for(lambda: "worker_died" in dead_reasons(rig), timeout=30, what="the message dead-lettered")
    wait_for(lambda: rig.pending() == 0, timeout=60, what="the record resent by the device and stored")
    assert worker.health() == "ok"
