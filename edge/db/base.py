"""Declarative base, UTC timestamp type and the SQLite engine of the device (WAL, synchronous FULL, foreign keys)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    pass


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and come back timezone-aware; naive values are refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """The device engine: every connection in WAL mode with synchronous FULL (a commit survives power loss)."""
    if not url.startswith("sqlite"):
        raise ValueError(f"the device database must be SQLite, got {url.split(':', 1)[0]!r}")
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def redoable_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work whose loss at power failure is harmless because it is redone, committed without
    waiting for the disk (``synchronous=NORMAL``; in WAL mode still atomic and consistent).

    For the sync sender's own bookkeeping only: marking rows acked (lost: the rows are resent and the
    server acks them as duplicates), sealing (lost: resealed to the same bytes: the payload is made from
    the row and Ed25519 signatures are deterministic), backoff counters. Business rows and their outbox
    rows always commit with ``synchronous=FULL``: the connection is set back before it returns to the pool.
    """
    engine = factory.kw["bind"]
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA synchronous=NORMAL")  # outside a transaction: SQLite refuses it inside
        conn.commit()
        try:
            with factory(bind=conn) as session, session.begin():
                yield session
        finally:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
