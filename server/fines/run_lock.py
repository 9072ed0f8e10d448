"""The daily run's database lock: two runs at once (two hosts, a cron job and the server, a retry) must not
both work. On PostgreSQL it is a session advisory lock held on its own connection: it goes when the holding
process dies, however it dies. SQLite has none, so there it is a lease row in ``fine_run_lease`` (holder,
host, pid, expiry), renewed as the run goes; a lease whose time ran out, or whose holder on this host is no
longer alive, may be taken over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.db.fines import RunLease

ADVISORY_KEY = 0x706B66696E6573  # "pkfines": one key for the daily run
ADVISORY_KEYS = {"daily": ADVISORY_KEY, "retention": 0x706B726574656E}  # "pkreten": the retention run
LEASE = timedelta(minutes=5)


class RunBusy(RuntimeError):
    """Another daily run holds the lock."""


class RunLock:
    """Held while a run works; ``renew()`` after each batch keeps a lease alive (a no-op on PostgreSQL)."""

    def __init__(self, renew: Callable[[], None]) -> None:
        self._renew = renew

    def renew(self) -> None:
        self._renew()


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def run_lock(engine: Engine, now: Callable[[], datetime], name: str = "daily") -> Iterator[RunLock]:
    """Hold the run lock for the ``with`` body; ``RunBusy`` at once when another run has it."""
    if engine.dialect.name == "postgresql":
        with _advisory(engine, ADVISORY_KEYS.get(name, ADVISORY_KEY), name) as lock:
            yield lock
    else:
        with _lease(engine, now, name) as lock:
            yield lock


@contextmanager
def _advisory(engine: Engine, key: int, name: str) -> Iterator[RunLock]:
    conn = engine.connect()
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not got:
            raise RunBusy(f"another {name} run holds the lock (PostgreSQL advisory lock)")
        try:
            yield RunLock(lambda: None)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
    finally:
        conn.close()


def _alive_here(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell: only the lease's expiry frees it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _lease(engine: Engine, now: Callable[[], datetime], name: str) -> Iterator[RunLock]:
    me, host, pid = holder_name(), socket.gethostname(), os.getpid()
    with engine.begin() as conn:
        conn.execute(
            sqlite_insert(RunLease)
            .values(name=name, holder=None, host="", pid=0, expires_at=None)
            .on_conflict_do_nothing()
        )
    with engine.begin() as conn:
        row = conn.execute(
            select(RunLease.holder, RunLease.host, RunLease.pid).where(RunLease.name == name)
        ).one()
        free = or_(RunLease.holder.is_(None), RunLease.expires_at < now())
        if row.holder is not None and not _alive_here(row.host, row.pid):
            free = or_(free, RunLease.holder == row.holder)
        taken = conn.execute(
            update(RunLease)
            .where(RunLease.name == name, free)
            .values(holder=me, host=host, pid=pid, expires_at=now() + LEASE)
        ).rowcount
    if not taken:
        raise RunBusy(f"another {name} run holds the lock ({row.holder})")

    def renew() -> None:
        with engine.begin() as conn:
            kept = conn.execute(
                update(RunLease)
                .where(RunLease.name == name, RunLease.holder == me)
                .values(expires_at=now() + LEASE)
            ).rowcount
        if not kept:
            raise RunBusy("the daily run's lease was taken over")

    try:
        yield RunLock(renew)
    finally:
        with engine.begin() as conn:
            conn.execute(
                update(RunLease)
                .where(RunLease.name == name, RunLease.holder == me)
                .values(holder=None, host="", pid=0, expires_at=None)
            )
