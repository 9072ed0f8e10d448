"""Each device stream's marks in ``sync_stream``: its highest seq seen, its contiguous high-water mark (every
seq up to it is in the inbox) and since when a gap has been open. Raised after a batch's records are stored
and when a device says hello; ``server.ingest.gaps`` asks devices again for what lies between.

A batch's streams are raised together (``advance_streams``): one read of their rows, one insert of those that
are new, the inbox read only for a stream whose marks can move, and one executemany of the moves, in key
order. A fleet reconnecting at once sends a hello per device, and each would otherwise cost three statements."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from server.db.sync import SyncInbox, SyncStream
from server.ingest.bulk_write import is_postgresql, table_of

HWM_CHUNK = 500  # seqs read per step while raising the contiguous high-water mark

_STREAM = table_of(SyncStream)
_STREAM_KEY = (_STREAM.c.device_id == bindparam("dev")) & (_STREAM.c.epoch == bindparam("ep"))
_NEW_ROW = {"device_id": bindparam("dev"), "epoch": bindparam("ep"), "hwm": 0, "max_seq": 0,
            "resend_requests": 0, "updated_at": bindparam("now")}  # fmt: skip
# A stream row another worker creates at the same moment is left alone (it waits for that worker's commit on
# PostgreSQL, for its write lock on SQLite), then read like any existing row.
_STREAM_NEW_PG = pg_insert(_STREAM).values(_NEW_ROW).on_conflict_do_nothing()
_STREAM_NEW_SQLITE = sqlite_insert(_STREAM).values(_NEW_ROW).on_conflict_do_nothing()
_NEW_HWM = case((_STREAM.c.hwm < bindparam("hwm"), bindparam("hwm")), else_=_STREAM.c.hwm)
_NEW_MAX = case((_STREAM.c.max_seq < bindparam("max_seq"), bindparam("max_seq")), else_=_STREAM.c.max_seq)
# marks only rise; a gap is open while max_seq is above hwm, since it first opened (judged on the row as it is
# when updated, so a raise committed by another worker meanwhile is not undone)
_STREAM_MOVE = (
    update(_STREAM)
    .where(_STREAM_KEY)
    .values(
        hwm=_NEW_HWM,
        max_seq=_NEW_MAX,
        gap_since=case((_NEW_MAX > _NEW_HWM, func.coalesce(_STREAM.c.gap_since, bindparam("now"))), else_=None),
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
    if not touched:
        return
    keys = sorted(touched)
    rows = _stream_rows(session, keys, now)
    moves = []
    for device_id, epoch in keys:
        start, old_max = rows[(device_id, epoch)]
        seen = touched[(device_id, epoch)]
        # seqs past max_seq come only with a batch, which raises max_seq itself: with hwm at max_seq and
        # nothing newer seen, no stored run can follow hwm
        hwm = start if start >= max(old_max, seen) else _raise_hwm(session, device_id, epoch, start)
        moves.append({"dev": device_id, "ep": epoch, "hwm": hwm, "max_seq": max(old_max, seen, hwm), "now": now})
    session.execute(_STREAM_MOVE, moves)


def _stream_rows(
    session: Session, keys: list[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], tuple[int, int]]:
    """The streams' hwm and max seq, by key; rows not there yet are created first (without failing
    when another worker creates one at the same time)."""
    found = _read_streams(session, keys)
    missing = [k for k in keys if k not in found]
    if missing:
        new = _STREAM_NEW_PG if is_postgresql(session) else _STREAM_NEW_SQLITE
        session.execute(new, [{"dev": d, "ep": e, "now": now} for d, e in missing])
        found.update(_read_streams(session, missing))
    if len(found) < len(keys):  # pragma: no cover - the rows were just inserted or found
        raise RuntimeError(f"sync_stream rows {sorted(set(keys) - set(found))[:3]} vanished while created")
    return found


def _read_streams(
    session: Session, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int]]:
    wanted = set(keys)
    devices = sorted({d for d, _e in keys})
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for i in range(0, len(devices), 500):
        rows = session.execute(
            select(_STREAM.c.device_id, _STREAM.c.epoch, _STREAM.c.hwm, _STREAM.c.max_seq)
            .where(_STREAM.c.device_id.in_(devices[i : i + 500]))
        )
        for dev, ep, hwm, max_seq in rows:
            if (dev, ep) in wanted:
                found[(dev, ep)] = (int(hwm), int(max_seq))
    return found


def _raise_hwm(session: Session, device_id: str, epoch: str, hwm: int) -> int:
    """The high-water mark moved over the seqs stored contiguously after ``hwm``."""
    start = hwm
    while True:
        end = _contiguous_end(session, device_id, epoch, hwm)
        if end is None:
            return hwm
        moved, hwm = end > hwm, end
        if not moved or end - start < HWM_CHUNK:
            return hwm
        start = hwm


def raise_marks(session: Session, device_id: str, epoch: str, now: datetime, seen: int) -> None:
    """Move one stream's hwm over the seqs now stored contiguously after it, and its max seq to ``seen``."""
    advance_streams(session, now, {(device_id, epoch): seen})


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
