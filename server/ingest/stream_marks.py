"""Each device stream's marks in ``sync_stream``: its highest seq seen, its contiguous high-water mark (every
seq up to it is in the inbox) and since when a gap has been open. Raised after a batch's records are stored
and when a device says hello; ``server.ingest.gaps`` asks devices again for what lies between."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from server.db.sync import SyncInbox, SyncStream
from server.ingest.bulk_write import is_postgresql, table_of

HWM_CHUNK = 500  # seqs read per step while raising the contiguous high-water mark

_STREAM = table_of(SyncStream)
_STREAM_KEY = (_STREAM.c.device_id == bindparam("dev")) & (_STREAM.c.epoch == bindparam("ep"))
_STREAM_READ = select(_STREAM.c.hwm, _STREAM.c.max_seq, _STREAM.c.gap_since).where(_STREAM_KEY)
_NEW_ROW = {"device_id": bindparam("dev"), "epoch": bindparam("ep"), "hwm": 0, "max_seq": 0,
            "resend_requests": 0, "updated_at": bindparam("now")}  # fmt: skip
# A stream row another worker creates at the same moment is left alone (it waits for that worker's commit on
# PostgreSQL, for its write lock on SQLite), then read like any existing row.
_STREAM_NEW_PG = pg_insert(_STREAM).values(_NEW_ROW).on_conflict_do_nothing()
_STREAM_NEW_SQLITE = sqlite_insert(_STREAM).values(_NEW_ROW).on_conflict_do_nothing()
_STREAM_MOVE = (
    update(_STREAM)
    .where(_STREAM_KEY)
    .values(
        hwm=case((_STREAM.c.hwm < bindparam("hwm"), bindparam("hwm")), else_=_STREAM.c.hwm),
        max_seq=case(
            (_STREAM.c.max_seq < bindparam("max_seq"), bindparam("max_seq")), else_=_STREAM.c.max_seq
        ),
        gap_since=bindparam("gap_since"),
        updated_at=bindparam("now"),
    )
)
_INBOX = table_of(SyncInbox)
_RUN_AHEAD = (
    select(_INBOX.c.seq)
    .where(
        _INBOX.c.device_id == bindparam("dev"),
        _INBOX.c.epoch == bindparam("ep"),
        _INBOX.c.seq > bindparam("hwm"),
    )
    .order_by(_INBOX.c.seq)
    .limit(HWM_CHUNK)
)


def advance_streams(session: Session, now: datetime, touched: dict[tuple[str, str], int]) -> None:
    """Raise each stream's max seq and contiguous high-water mark; note when a gap appeared.

    Streams are taken in key order: two workers whose batches touch the same streams lock their rows in the
    same order (in arrival order they could each wait for the other, a deadlock that fails a batch)."""
    for (device_id, epoch), seen in sorted(touched.items()):
        raise_marks(session, device_id, epoch, now, seen)


def raise_marks(session: Session, device_id: str, epoch: str, now: datetime, seen: int) -> None:
    """Move the stream's hwm over the seqs now stored contiguously after it, and its max seq to ``seen``.

    Statements built once at import (no expression building per batch); the stream row is created if new,
    without failing when another worker creates it at the same time.
    """
    key = {"dev": device_id, "ep": epoch}
    start, old_max, gap_since = _stream_row(session, key, now)
    hwm = start
    while True:
        end = _contiguous_end(session, device_id, epoch, hwm)
        if end is None:
            break
        moved, hwm = end > hwm, end
        if not moved or end - start < HWM_CHUNK:
            break
        start = hwm
    max_seq = max(old_max, seen, hwm)
    gap = (gap_since or now) if max_seq > hwm else None
    session.execute(_STREAM_MOVE, {**key, "hwm": hwm, "max_seq": max_seq, "gap_since": gap, "now": now})


def _stream_row(session: Session, key: dict[str, str], now: datetime) -> tuple[int, int, datetime | None]:
    """The stream's hwm, max seq and gap start; the row is created first if there is none yet."""
    row = session.execute(_STREAM_READ, key).first()
    if row is None:
        new = _STREAM_NEW_PG if is_postgresql(session) else _STREAM_NEW_SQLITE
        session.execute(new, {**key, "now": now})
        row = session.execute(_STREAM_READ, key).first()
    if row is None:  # pragma: no cover - the row was just inserted or found
        raise RuntimeError(f"sync_stream row {key} vanished while it was created")
    return int(row[0]), int(row[1]), row[2]


@functools.lru_cache(maxsize=4)
def _run_ahead_compiled(dialect: Any) -> Any:
    """``_RUN_AHEAD`` compiled once per dialect (compiling it costs more than running it)."""
    return _RUN_AHEAD.compile(dialect=dialect)


def _contiguous_end(session: Session, device_id: str, epoch: str, hwm: int) -> int | None:
    """The last seq of the run hwm+1, hwm+2, … stored in the inbox, looking at most ``HWM_CHUNK`` seqs
    ahead (an index-only range scan; the run is followed in Python); None if hwm+1 is missing.

    Run on the DBAPI cursor with the statement compiled once: up to 500 plain tuples per call, not a result
    object per row."""
    conn = session.connection()
    compiled = _run_ahead_compiled(conn.dialect)
    params = compiled.construct_params({"dev": device_id, "ep": epoch, "hwm": hwm})
    order = compiled.positiontup  # positional paramstyle (SQLite); None for psycopg's named style
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), tuple(params[n] for n in order) if order else params)
        seqs = cursor.fetchall()
    finally:
        cursor.close()
    end = hwm
    for (seq,) in seqs:
        if seq != end + 1:
            break
        end = seq
    return end if end > hwm else None
