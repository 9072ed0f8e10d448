"""The records of a batch into ``sync_inbox``, idempotent on (device, epoch, seq): ``store_new`` writes those
whose key and record id are both unused and says which keys were stored already (with their SHA-256), so the
caller can ack the rest as duplicates or conflicts.

PostgreSQL: the stored keys are found by one index range scan per device stream, then the new rows go in one
binary ``COPY`` under a savepoint (``bulk_write``). SQLite: an indexed look-up per 500 keys, then
``INSERT … ON CONFLICT DO NOTHING RETURNING``. Why the look-ups are never prepared and pass their arrays in
binary is measured in README.md, "Benchmarks".
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from server.db.sync import SyncInbox
from server.ingest.bulk_write import copy_types, copy_under_savepoint, is_postgresql, pg_cursor, table_of
from server.ingest.outcome import Accepted, RecordKey

# Key look-ups are never prepared (psycopg prepares a statement run 5 times): a generic plan made while the
# table was small can keep scanning it whole as it grows; planned for each call, they are index look-ups.
# The arrays go in binary (%b): psycopg would quote each element of a text array in Python.
_INBOX_HELD = (
    "SELECT seq, sha256 FROM sync_inbox WHERE device_id = %s AND epoch = %s AND seq = ANY(%b::bigint[])"
)
# A batch's seqs are mostly a run: one range scan of the index instead of a probe per seq
_INBOX_HELD_RANGE = (
    "SELECT seq, sha256 FROM sync_inbox WHERE device_id = %s AND epoch = %s AND seq BETWEEN %s AND %s"
)
_INBOX_IDS_USED = "SELECT record_id FROM sync_inbox WHERE record_id = ANY(%b::varchar[])"


def store_new(
    session: Session, unique: dict[RecordKey, Accepted], now: datetime
) -> tuple[set[RecordKey], dict[RecordKey, str]]:
    """Store the records of ``unique`` new to ``sync_inbox``; return (keys stored now, sha256 of the keys that
    were there already). A record whose id is used by another key is in neither (the caller makes it a
    conflict)."""
    if is_postgresql(session):
        return _pg_inbox_copy(session, unique, now)
    stored = _stored_digests(session, list(unique))
    columns = _inbox_columns([unique[k] for k in unique if k not in stored])
    rows = [
        {**dict(zip(columns, values, strict=True)), "received_at": now}
        for values in zip(*columns.values(), strict=True)
    ]
    inserted: set[RecordKey] = set()
    if rows:  # DO NOTHING: a record id already stored under another seq is a conflict, not an error
        inbox = table_of(SyncInbox)
        stmt = sqlite_insert(inbox).on_conflict_do_nothing()
        result = session.execute(stmt.returning(inbox.c.device_id, inbox.c.epoch, inbox.c.seq), rows)
        inserted = {(d, e, int(q)) for d, e, q in result}
    return inserted, stored


def _stored_digests(session: Session, keys: list[RecordKey]) -> dict[RecordKey, str]:
    """sha256 of the records already in ``sync_inbox`` among ``keys`` (an indexed lookup per 500)."""
    wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for dev, epoch, seq in keys:
        wanted[(dev, epoch)].append(seq)
    stored: dict[RecordKey, str] = {}
    for (dev, epoch), seqs in wanted.items():
        seqs.sort()
        for i in range(0, len(seqs), 500):
            rows = session.execute(
                select(SyncInbox.seq, SyncInbox.sha256).where(
                    SyncInbox.device_id == dev, SyncInbox.epoch == epoch, SyncInbox.seq.in_(seqs[i : i + 500])
                )
            )
            for seq, digest in rows:
                stored[(dev, epoch, seq)] = digest
    return stored


def _pg_inbox_copy(
    session: Session, unique: dict[RecordKey, Accepted], now: datetime
) -> tuple[set[RecordKey], dict[RecordKey, str]]:
    """``store_new`` on PostgreSQL. New = its (device, epoch, seq) and its record id both unused.

    The keys already stored are found by one index lookup per device stream. A record id used twice is
    rare (a device restored from a backup): the COPY goes first, under a savepoint, and only if a unique
    index refuses it are the record ids looked up and the COPY made again without the refused ones. A racing
    worker's insert of the same keys is found by the second lookup (they become duplicates); if the second
    COPY still fails, ``IntegrityError``: the worker redoes the batch."""
    stored: dict[RecordKey, str] = {}
    wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for dev, epoch, seq in unique:
        wanted[(dev, epoch)].append(seq)
    with pg_cursor(session, "COPY sync_inbox") as cursor:
        _held_keys(cursor, wanted, stored)
        candidates = {k: a for k, a in unique.items() if k not in stored}
        new = _first_per_record_id(candidates, set())
        if not new:
            return set(), stored
        if not copy_under_savepoint(cursor, lambda: _copy_inbox(session, cursor, new, now)):
            stored.clear()
            _held_keys(cursor, wanted, stored)  # a racing worker's rows are visible now: duplicates
            candidates = {k: a for k, a in unique.items() if k not in stored}
            ids = [a.head.id for a in candidates.values()]
            used = (
                {rid for (rid,) in cursor.execute(_INBOX_IDS_USED, (ids,), prepare=False)} if ids else set()
            )
            new = _first_per_record_id(candidates, used)
            if new:
                _copy_inbox(session, cursor, new, now)
    return set(new), stored


def _held_keys(
    cursor: psycopg.Cursor[Any], wanted: dict[tuple[str, str], list[int]], into: dict[RecordKey, str]
) -> None:
    """Fill ``into`` with the sha256 of the wanted keys already in ``sync_inbox`` (see ``_INBOX_HELD``)."""
    for (dev, epoch), seqs in wanted.items():
        lo, hi = min(seqs), max(seqs)
        if hi - lo < 2 * len(seqs) + 64:  # a run, or nearly: scan the range, keep the wanted seqs
            want = set(seqs)
            for seq, digest in cursor.execute(_INBOX_HELD_RANGE, (dev, epoch, lo, hi), prepare=False):
                if seq in want:
                    into[(dev, epoch, int(seq))] = digest
        else:
            for seq, digest in cursor.execute(_INBOX_HELD, (dev, epoch, seqs), prepare=False):
                into[(dev, epoch, int(seq))] = digest


def _first_per_record_id(candidates: dict[RecordKey, Accepted], used: set[str]) -> dict[RecordKey, Accepted]:
    """The candidates whose record id is not in ``used``; of several in this batch with one id, the first."""
    seen = set(used)
    new: dict[RecordKey, Accepted] = {}
    for k, a in candidates.items():
        if a.head.id not in seen:
            seen.add(a.head.id)
            new[k] = a
    return new


def _copy_inbox(
    session: Session, cursor: psycopg.Cursor[Any], new: dict[RecordKey, Accepted], now: datetime
) -> None:
    columns = _inbox_columns(list(new.values()))
    sql, types, received = _inbox_copy_plan(session.get_bind().dialect, tuple(columns))
    at = received(now) if received else now
    with cursor.copy(sql) as copy:
        copy.set_types(types)
        for values in zip(*columns.values(), strict=True):  # no bind processors: str, int, bytes
            copy.write_row([*values, at])


@functools.lru_cache(maxsize=4)
def _inbox_copy_plan(dialect: Any, names: tuple[str, ...]) -> tuple[str, list[str], Any]:
    """The inbox's binary COPY (``names`` then ``received_at``): its SQL, column types and the bind
    processor of ``received_at``, made once (compiling the types costs more than a batch's rows)."""
    inbox = table_of(SyncInbox)
    columns = (*names, "received_at")
    types = copy_types(inbox, columns, dialect)
    if types is None:
        raise TypeError("a sync_inbox column has no binary COPY type in bulk_write._COPY_TYPES")
    sql = f"COPY sync_inbox ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    return sql, types, inbox.c.received_at.type.bind_processor(dialect)


def _inbox_columns(accepted: list[Accepted]) -> dict[str, list[Any]]:
    """The ``sync_inbox`` rows of ``accepted`` column by column (``received_at``, the same for all, apart)."""
    heads = [a.head for a in accepted]
    recs = [a.rec for a in accepted]
    return {
        "device_id": [a.device_id for a in accepted],
        "epoch": [h.epoch for h in heads],
        "seq": [h.seq for h in heads],
        "record_id": [h.id for h in heads],
        "stream": [h.stream for h in heads],
        "sv": [h.sv for h in heads],
        "sha256": [a.digest for a in accepted],
        "payload": [r.payload for r in recs],
        "sig": [r.sig for r in recs],
        "kid": [r.kid for r in recs],
        "batch_id": [a.batch.batch_id if a.batch is not None else None for a in accepted],
    }
