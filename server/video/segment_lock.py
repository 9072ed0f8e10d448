"""One request at a time per segment, across every server process that shares the database.

A segment's lock is a number made from its device id and segment number. Within one process a
``threading.Lock`` per number (kept only while someone holds or waits for it) serialises the threads; across
processes the database does:

- PostgreSQL: ``pg_advisory_xact_lock`` on that number, in a transaction of its own on a connection held for
  as long as the lock (ending the transaction or losing the connection releases it: a crashed host never
  leaves a segment locked). Those connections come from a pool of their own, so that requests holding or
  waiting for locks never take the connections the locked work needs;
- SQLite (one host): a POSIX record lock (``fcntl.lockf``) on the byte at that number in a file next to the
  database (``<database>.segment-locks``); the kernel releases it when the process ends. An in-memory
  database is one process's alone, and needs only the thread lock.

Two segments whose numbers collide only wait for each other; they never share a lock's holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, text

SQLITE_LOCK_SPAN = 1 << 30  # byte positions in the SQLite lock file (a sparse file: nothing is written)


def lock_number(device_id: str, seq: int) -> int:
    """The segment's lock number: a signed 64-bit integer (PostgreSQL's ``bigint``) from its identity."""
    digest = hashlib.sha256(f"segment-upload/{device_id}/{seq}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class _Waiters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # holding or waiting


class SegmentLocks:
    """``hold(device_id, seq)``: the segment's lock, for this process's threads and every other process."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock_engine: Engine | None = None
        self._local: dict[int, _Waiters] = {}
        self._guard = threading.Lock()
        self._lock_file: int | None = None
        backend = engine.dialect.name
        if backend == "postgresql":
            self.kind = "postgresql advisory lock"
            self._lock_engine = create_engine(engine.url, pool_size=4, max_overflow=60, pool_pre_ping=True)
        elif backend == "sqlite":
            path = engine.url.database
            if path and path != ":memory:" and not path.startswith("file::memory:"):
                self._lock_file = os.open(f"{path}.segment-locks", os.O_RDWR | os.O_CREAT, 0o600)
                self.kind = "file record lock"
            else:
                self.kind = "thread lock"
        else:
            raise ValueError(f"no segment lock for database {backend!r}")

    @contextlib.contextmanager
    def hold(self, device_id: str, seq: int) -> Iterator[None]:
        number = lock_number(device_id, seq)
        with self._thread_lock(number % SQLITE_LOCK_SPAN):
            if self._lock_engine is not None:
                with self._advisory(number):
                    yield
            elif self._lock_file is not None:
                with self._record(number):
                    yield
            else:
                yield

    @contextlib.contextmanager
    def _thread_lock(self, number: int) -> Iterator[None]:
        with self._guard:
            entry = self._local.get(number)
            if entry is None:
                entry = self._local[number] = _Waiters()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._local[number]

    @contextlib.contextmanager
    def _advisory(self, number: int) -> Iterator[None]:
        assert self._lock_engine is not None
        with self._lock_engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": number})
            try:
                yield
            finally:
                conn.rollback()  # ends the lock's transaction: releases the lock

    @contextlib.contextmanager
    def _record(self, number: int) -> Iterator[None]:
        assert self._lock_file is not None
        position = number % SQLITE_LOCK_SPAN
        # POSIX record locks belong to the process: the thread lock above (keyed by the position) keeps two
        # threads of this process from holding the same position at once, so one's unlock never frees the
        # other's.
        fcntl.lockf(self._lock_file, fcntl.LOCK_EX, 1, position, os.SEEK_SET)
        try:
            yield
        finally:
            fcntl.lockf(self._lock_file, fcntl.LOCK_UN, 1, position, os.SEEK_SET)

    def close(self) -> None:
        """Let go of the pooled lock connections (the lock file stays open: the locks keep working)."""
        if self._lock_engine is not None:
            self._lock_engine.dispose()
