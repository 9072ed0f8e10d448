"""One ingest batch in one database transaction: verify each record, insert it idempotently with its
business row, record rejects as dead letters and different-hash duplicates as conflicts, and update the
per-stream sequence state. Returns the acks to publish, which the worker sends only after COMMIT.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

import psycopg
from sqlalchemy import LargeBinary, Table, bindparam, case, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.name_search import name_keys
from core.structured_log import log_event
from core.sync.control import (
    MAX_CONTROL_BYTES,
    AckEntry,
    Hello,
    RefApplied,
    SyncRef,
    open_signed,
    parse_control,
    topic_device,
)
from core.sync.envelope import (
    EnvelopeError,
    RecordPayload,
    SignedBatch,
    SignedRecord,
    decode_up,
    parse_json,
    parse_payload,
    sha256_hex,
    valid_device_id,
)
from core.sync.records import RecordBody, RecordRejected, parse_body
from core.sync.signing import DOMAIN_BATCH, DOMAIN_RECORD, DOMAIN_REQUEST, BadSignature, KeyRing
from server.db.protocols import Officer, Payment, Protocol, ProtocolNameKey
from server.db.sync import (
    Bookmark,
    DeviceStatus,
    OwnCardCheck,
    ReceiptEvent,
    RecordingGap,
    SegmentMeta,
    SyncBatch,
    SyncConflict,
    SyncDeadLetter,
    SyncDeviceDataset,
    SyncInbox,
    SyncStream,
)
from server.fines.issuing import fines_for_synced_protocols
from server.ingest.limits import (
    body_problem,
    dataset_in_use_problem,
    fits_device_id,
    head_problem,
    hello_problem,
)
from server.ingest.payment_attempts import STREAMS as PAYMENT_ATTEMPT_STREAMS
from server.ingest.payment_attempts import store_payment_records
from server.ingest.registry import DeviceRegistry

log = logging.getLogger(__name__)
# What a later record of a protocol may change besides its status: the officer app's additions (v2)
PROTOCOL_V2_FIELDS = ("driver_phone", "driver_agreed_at", "driver_agreed_language")
_HWM_CHUNK = 500  # seqs read per step while raising the contiguous high-water mark
DEAD_LETTER_KEPT_BYTES = 64 * 1024  # of a refused message; its size and SHA-256 are of the whole


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes


@dataclass
class BatchOutcome:
    acks: dict[str, list[AckEntry]] = field(default_factory=lambda: defaultdict(list))
    dataset_requests: list[tuple[str, SyncRef]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_letters: int = 0

    def merge(self, other: BatchOutcome) -> None:
        """Add ``other`` (the outcome of further messages) to this one."""
        for device_id, entries in other.acks.items():
            self.acks[device_id].extend(entries)
        self.dataset_requests.extend(other.dataset_requests)
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.dead_letters += other.dead_letters


@dataclass(slots=True)
class _Accepted:
    device_id: str
    rec: SignedRecord  # for a v2 record: the payload with the batch's signature and key id
    head: RecordPayload
    body: RecordBody
    digest: str
    batch: SignedBatch | None = None


def _dead(session: Session, out: BatchOutcome, now: datetime, topic: str, device: str | None, reason: str,
          detail: str, data: bytes) -> None:  # fmt: skip
    """Keep a refused message or record aside: its reason, and its first ``DEAD_LETTER_KEPT_BYTES`` with
    the size and SHA-256 of the whole. Every text is cut to its column and NUL-free, so this insert cannot
    fail whatever the message held."""
    session.add(
        SyncDeadLetter(
            device_id=device if device is not None and fits_device_id(device) else None,
            topic=_storable(topic, 256),
            reason=_storable(reason, 32),
            detail=_storable(detail, 2000),
            data=data[:DEAD_LETTER_KEPT_BYTES],
            size_bytes=len(data),
            sha256=sha256_hex(data),
            received_at=now,
        )
    )
    out.dead_letters += 1
    log_event(log, "sync.dead_letter", device=device, topic=topic[:256], reason=reason, detail=detail[:300],
              size=len(data))  # fmt: skip


def dead_letter(session: Session, now: datetime, message: Incoming, reason: str, detail: str) -> None:
    """Dead-letter a whole message that could not be handled (in the caller's transaction)."""
    where = topic_device(message.topic)
    _dead(session, BatchOutcome(), now, message.topic, where[0] if where else None, reason, detail,
          message.payload)  # fmt: skip


def _storable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters that any text column can hold (no NUL, no lone surrogate)."""
    cut = text[:limit]
    if cut.isascii() and "\x00" not in cut:
        return cut
    return cut.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def ingest_batch(
    session: Session, messages: list[Incoming], devices: DeviceRegistry, now: datetime
) -> BatchOutcome:
    """Process ``messages`` in the caller's transaction (the caller commits, then publishes the acks).

    A message whose checks raise anything is dead-lettered with the error (reason ``internal_error``) and
    the others go on; an error while storing fails the transaction, and the worker then takes the batch's
    messages one at a time (``server.ingest.worker``)."""
    out = BatchOutcome()
    accepted: list[_Accepted] = []
    for msg in messages:
        try:
            accepted.extend(_check_message(session, out, now, msg, devices))
        except Exception as exc:  # no message may stop the others: it is kept aside with the error
            log.exception("sync.check_failed", extra={"event": "sync.check_failed", "topic": msg.topic[:256]})
            _dead(session, out, now, msg.topic, None, "internal_error", f"{type(exc).__name__}: {exc}"[:2000],
                  msg.payload)  # fmt: skip
    if accepted:
        _store(session, out, now, accepted)
    return out


def _check_message(session: Session, out: BatchOutcome, now: datetime, msg: Incoming,
                   devices: DeviceRegistry) -> list[_Accepted]:  # fmt: skip
    """The records of one message that passed every check; the rest dead-lettered (and acked if rejected)."""
    where = topic_device(msg.topic)
    if where is None or not valid_device_id(where[0]) or not fits_device_id(where[0]):
        _dead(session, out, now, msg.topic, None, "bad_topic", "not a device topic", msg.payload)
        return []
    device_id, kind = where
    if kind == "req":
        _request(session, out, now, msg, device_id, devices)
        return []
    try:
        up = decode_up(msg.payload)
    except EnvelopeError as exc:
        _dead(session, out, now, msg.topic, device_id, exc.reason, exc.detail, msg.payload)
        return []
    if isinstance(up, SignedBatch):
        return _check_batch(session, out, now, msg, device_id, up, devices)
    found = []
    for rec in up:
        checked = _check(session, out, now, msg.topic, device_id, rec, devices)
        if checked is not None:
            found.append(checked)
    return found


def _check(session: Session, out: BatchOutcome, now: datetime, topic: str, device_id: str, rec: SignedRecord,
           devices: DeviceRegistry) -> _Accepted | None:  # fmt: skip
    key = devices.lookup(rec.kid)
    if key is None:
        _dead(
            session,
            out,
            now,
            topic,
            device_id,
            "unknown_key",
            f"key id {rec.kid[:32]!r} unknown",
            rec.payload,
        )
        return None
    if key.device_id != device_id:
        detail = f"key of {key.device_id} used on the topic of {device_id}"
        _dead(session, out, now, topic, device_id, "wrong_device", detail, rec.payload)
        return None
    try:
        key.verifier.verify(DOMAIN_RECORD, rec.payload, rec.sig)
    except BadSignature as exc:
        _dead(session, out, now, topic, device_id, "bad_signature", str(exc), rec.payload)
        return None
    return _check_signed(session, out, now, topic, device_id, rec, None)


def _check_batch(session: Session, out: BatchOutcome, now: datetime, msg: Incoming, device_id: str,
                 batch: SignedBatch, devices: DeviceRegistry) -> list[_Accepted]:  # fmt: skip
    """A v2 message: one key check and one signature verification for all its records."""
    key = devices.lookup(batch.kid)
    if key is None:
        detail = f"key id {batch.kid[:32]!r} unknown"
        _dead(session, out, now, msg.topic, device_id, "unknown_key", detail, msg.payload)
        return []
    if key.device_id != device_id:
        detail = f"key of {key.device_id} used on the topic of {device_id}"
        _dead(session, out, now, msg.topic, device_id, "wrong_device", detail, msg.payload)
        return []
    try:
        key.verifier.verify(DOMAIN_BATCH, batch.manifest, batch.sig)
    except BadSignature as exc:
        _dead(session, out, now, msg.topic, device_id, "bad_signature", str(exc), msg.payload)
        return []
    found: list[_Accepted] = []
    for payload, digest in zip(batch.payloads, batch.digests, strict=True):
        checked = _check_signed(
            session,
            out,
            now,
            msg.topic,
            device_id,
            SignedRecord(payload, batch.sig, batch.kid),
            batch,
            digest.hex(),
        )
        if checked is not None:
            found.append(checked)
    return found


def _check_signed(session: Session, out: BatchOutcome, now: datetime, topic: str, device_id: str,
                  rec: SignedRecord, batch: SignedBatch | None, digest: str | None = None) -> _Accepted | None:  # fmt: skip
    """Checks after the signature verified: the payload's shape, its device, and its body."""
    digest = digest or rec.sha256
    try:
        head = parse_payload(rec.payload)
        too_big = head_problem(head)
        if too_big is not None:
            raise EnvelopeError("out_of_range", too_big)
    except EnvelopeError as exc:
        _dead(session, out, now, topic, device_id, exc.reason, exc.detail, rec.payload)
        return None
    if head.dev != device_id:
        _dead(
            session,
            out,
            now,
            topic,
            device_id,
            "wrong_device",
            f"record of {head.dev} on {device_id}",
            rec.payload,
        )
        return None
    try:
        if b"\\u0000" in rec.payload:  # valid JSON, but no PostgreSQL text column can hold it
            raise RecordRejected("invalid_body", "a string holds a NUL character (\\u0000)")
        body = parse_body(head.stream, head.sv, head.body)
        too_big = body_problem(head.stream, body)
        if too_big is not None:
            raise RecordRejected("out_of_range", too_big)
    except RecordRejected as exc:
        _dead(session, out, now, topic, device_id, exc.reason, exc.detail, rec.payload)
        # the record is genuinely the device's: tell it, so it stops resending and raises an alert
        out.acks[device_id].append(AckEntry(head.epoch, head.seq, digest, "rejected", exc.reason))
        return None
    return _Accepted(device_id, rec, head, body, digest, batch)


Key = tuple[str, str, int]


def _stored_digests(session: Session, keys: list[Key]) -> dict[Key, str]:
    """sha256 of the records already in ``sync_inbox`` among ``keys`` (an indexed lookup per 500)."""
    wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for dev, epoch, seq in keys:
        wanted[(dev, epoch)].append(seq)
    stored: dict[Key, str] = {}
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


# Key lookups are never prepared (psycopg prepares a statement run 5 times): a generic plan, made while the
# table was small, can keep scanning it whole as it grows (measured: 3 300 instead of 16 000 records/s, with
# PostgreSQL at 6.6 CPU s); planned for each call, they are index lookups. The arrays go in binary (%b): psycopg
# quotes each element of a text array in Python (500 record ids: 1.16 ms a lookup as text, 0.36 ms in binary).
_INBOX_HELD = (
    "SELECT seq, sha256 FROM sync_inbox WHERE device_id = %s AND epoch = %s AND seq = ANY(%b::bigint[])"
)
# A batch's seqs are mostly a run: one range scan of the index (0.19 ms) instead of a probe per seq (1.0 ms)
_INBOX_HELD_RANGE = (
    "SELECT seq, sha256 FROM sync_inbox WHERE device_id = %s AND epoch = %s AND seq BETWEEN %s AND %s"
)
_INBOX_IDS_USED = "SELECT record_id FROM sync_inbox WHERE record_id = ANY(%b::varchar[])"


def _pg_inbox_copy(
    session: Session, unique: dict[Key, _Accepted], now: datetime
) -> tuple[set[Key], dict[Key, str]]:
    """Store the records new to ``sync_inbox`` with one COPY; return (keys stored now, sha256 of the keys
    that were there already). New = its (device, epoch, seq) and its record id both unused; a record id used
    by another key is left out (the caller makes it a conflict).

    The keys already stored are found by one index lookup per device stream. A record id used twice is
    rare (a device restored from a backup): the COPY goes first, under a savepoint, and only if a unique
    index refuses it are the record ids looked up and the COPY made again without the refused ones. COPY
    writes many rows per heap page and WAL record and needs no speculative insertion. A racing worker's
    insert of the same keys is found by the second lookup (they become duplicates); if the second COPY
    still fails, ``IntegrityError``: the worker redoes the batch."""
    stored: dict[Key, str] = {}
    wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for dev, epoch, seq in unique:
        wanted[(dev, epoch)].append(seq)
    with _pg_raw(session, "COPY sync_inbox") as cursor:
        _held_keys(cursor, wanted, stored)
        candidates = {k: a for k, a in unique.items() if k not in stored}
        new = _first_per_record_id(candidates, set())
        if not new:
            return set(), stored
        if not _copy_under_savepoint(cursor, lambda: _copy_inbox(session, cursor, new, now)):
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
    cursor: psycopg.Cursor[Any], wanted: dict[tuple[str, str], list[int]], into: dict[Key, str]
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


def _first_per_record_id(candidates: dict[Key, _Accepted], used: set[str]) -> dict[Key, _Accepted]:
    """The candidates whose record id is not in ``used``; of several in this batch with one id, the first."""
    seen = set(used)
    new: dict[Key, _Accepted] = {}
    for k, a in candidates.items():
        if a.head.id not in seen:
            seen.add(a.head.id)
            new[k] = a
    return new


def _copy_inbox(
    session: Session, cursor: psycopg.Cursor[Any], new: dict[Key, _Accepted], now: datetime
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
    inbox = _table(SyncInbox)
    columns = (*names, "received_at")
    types = _copy_types(inbox, columns, dialect)
    if types is None:
        raise TypeError("a sync_inbox column has no binary COPY type in _COPY_TYPES")
    sql = f"COPY sync_inbox ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    return sql, types, inbox.c.received_at.type.bind_processor(dialect)


@contextlib.contextmanager
def _pg_raw(session: Session, what: str) -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor on the session's connection, in its transaction (COPY, unnest inserts, unprepared
    lookups), closed afterwards. A constraint refusing a row becomes SQLAlchemy's ``IntegrityError`` naming
    ``what``, the error the worker redoes a batch on."""
    driver = cast("psycopg.Connection[Any]", session.connection().connection.driver_connection)
    cursor = driver.cursor()
    try:
        yield cursor
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(what, None, exc) from exc
    finally:
        cursor.close()


def _copy_under_savepoint(cursor: psycopg.Cursor[Any], copy: Callable[[], None]) -> bool:
    """Run ``copy`` under a savepoint; False, with its effects undone, if a unique index refused a row."""
    cursor.execute("SAVEPOINT pk_copy")
    try:
        copy()
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT pk_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT pk_copy")
    return True


def _inbox_columns(accepted: list[_Accepted]) -> dict[str, list[Any]]:
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


def _store(session: Session, out: BatchOutcome, now: datetime, accepted: list[_Accepted]) -> None:
    """Insert the records new to ``sync_inbox`` and their business rows; ack the rest as dup or conflict.

    PostgreSQL: a range lookup, then one binary COPY under a savepoint (``_pg_inbox_copy``). SQLite: look up, then
    ``INSERT … ON CONFLICT DO NOTHING RETURNING``.
    """
    unique: dict[Key, _Accepted] = {}
    repeats: list[_Accepted] = []  # the same key twice in this batch
    for a in sorted(accepted, key=lambda a: (a.device_id, a.head.epoch, a.head.seq)):
        key = (a.device_id, a.head.epoch, a.head.seq)
        if key in unique:
            repeats.append(a)
        else:
            unique[key] = a
    batches: dict[str, dict[str, Any]] = {}
    for a in unique.values():
        if a.batch is not None and a.batch.batch_id not in batches:
            batches[a.batch.batch_id] = {
                "id": a.batch.batch_id,
                "device_id": a.device_id,
                "kid": a.batch.kid,
                "manifest": a.batch.manifest,
                "sig": a.batch.sig,
                "received_at": now,
            }
    _insert_ignore(session, _table(SyncBatch), list(batches.values()))
    if session.get_bind().dialect.name == "postgresql":
        inserted, stored = _pg_inbox_copy(session, unique, now)
    else:
        stored = _stored_digests(session, list(unique))
        columns = _inbox_columns([unique[k] for k in unique if k not in stored])
        rows = [
            {**dict(zip(columns, values, strict=True)), "received_at": now}
            for values in zip(*columns.values(), strict=True)
        ]
        inserted = set()
        if rows:  # DO NOTHING: a record id already stored under another seq is a conflict, not an error
            inbox = _table(SyncInbox)
            stmt = sqlite_insert(inbox).on_conflict_do_nothing()
            result = session.execute(stmt.returning(inbox.c.device_id, inbox.c.epoch, inbox.c.seq), rows)
            inserted = {(d, e, int(q)) for d, e, q in result}
    fresh = [a for k, a in unique.items() if k in inserted]
    for key, a in unique.items():
        if key not in inserted:
            _dup_or_conflict(session, out, now, a, stored.get(key))
    for a in repeats:
        _dup_or_conflict(session, out, now, a, unique[(a.device_id, a.head.epoch, a.head.seq)].digest)
    if fresh:
        refused = _business(session, now, fresh)
        for a in fresh:
            reason = refused.get((a.device_id, a.head.epoch, a.head.seq))
            status: Literal["ok", "conflict"] = "ok" if reason is None else "conflict"
            out.acks[a.device_id].append(AckEntry(a.head.epoch, a.head.seq, a.digest, status, reason))
        out.accepted += len(fresh)
    touched: dict[tuple[str, str], int] = {}
    for a in accepted:
        k = (a.device_id, a.head.epoch)
        touched[k] = max(touched.get(k, 0), a.head.seq)
    _advance_streams(session, now, touched)


def _dup_or_conflict(
    session: Session, out: BatchOutcome, now: datetime, a: _Accepted, stored: str | None
) -> None:
    """A record whose (device, epoch, seq) is already stored: same hash = ``dup`` (success), else a conflict."""
    if stored == a.digest:
        out.duplicates += 1
        out.acks[a.device_id].append(AckEntry(a.head.epoch, a.head.seq, a.digest, "dup"))
        return
    out.conflicts += 1
    reason = "different payload stored" if stored is not None else "record id already used by another record"
    session.add(
        SyncConflict(device_id=a.device_id, epoch=a.head.epoch, seq=a.head.seq, stored_sha256=stored or "",
                     new_sha256=a.digest, payload=a.rec.payload, sig=a.rec.sig, received_at=now, kind="seq",
                     detail=reason)
    )  # fmt: skip
    log.warning(
        "sync.conflict",
        extra={"event": "sync.conflict", "device": a.device_id, "epoch": a.head.epoch, "seq": a.head.seq},
    )
    out.acks[a.device_id].append(AckEntry(a.head.epoch, a.head.seq, a.digest, "conflict", reason))


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` of many rows (on PostgreSQL one statement)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        if len(table.primary_key.columns) == 1:
            _pg_copy_new(session, table, rows)
        else:
            _pg_unnest_insert(session, table, rows, "ON CONFLICT DO NOTHING")
        return
    session.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)


def _pg_copy_new(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """The rows whose (single-column) primary key is not in ``table`` yet, in one ``COPY``; the others are
    left alone, as ``ON CONFLICT DO NOTHING`` would (the first of several with one key wins).

    These rows belong to records new to the inbox, so their keys are almost always new too: the COPY goes
    first, under a savepoint, and only if the primary key refuses a row are the stored keys looked up and
    the COPY made again without them. COPY writes many rows per heap page and WAL record and needs no
    speculative insertion (segment metadata: 8.5 -> ~5 us of PostgreSQL CPU per row). If the second COPY
    fails too (another worker inserted a key meanwhile), ``IntegrityError``: the worker redoes the batch.
    """
    key = next(iter(table.primary_key.columns)).name
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row[key], row)
    plan = _copy_plan(table, session.get_bind().dialect, frozenset(rows[0]))
    with _pg_raw(session, plan.sql) as cursor:
        if _copy_under_savepoint(cursor, lambda: _copy_rows(cursor, plan, first.values())):
            return
        for (found,) in cursor.execute(plan.existing, [list(first)], prepare=False):  # see _INBOX_HELD
            first.pop(found, None)
        if first:
            _copy_rows(cursor, plan, first.values())


def _copy_rows(cursor: psycopg.Cursor[Any], plan: _CopyPlan, rows: Iterable[dict[str, Any]]) -> None:
    with cursor.copy(plan.sql) as copy:
        if plan.types:
            copy.set_types(plan.types)
        procs = [c[1] for c in plan.columns]
        for row in rows:
            values = [default if filled else row[name] for name, _proc, default, filled in plan.columns]
            copy.write_row([proc(v) if proc else v for v, proc in zip(values, procs, strict=True)])


@dataclass(frozen=True)
class _CopyPlan:
    sql: str  # COPY table (columns) FROM STDIN
    existing: str  # which of an array of primary keys are stored already
    columns: tuple[Column, ...]
    types: list[str] | None  # the type name of each column for binary COPY; None: text COPY


@functools.lru_cache(maxsize=64)
def _copy_plan(table: Table, dialect: Any, names: frozenset[str]) -> _CopyPlan:
    columns = _insert_columns(table, dialect, names)
    q = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(table)
    key = next(iter(table.primary_key.columns))
    types = _copy_types(table, [c[0] for c in columns], dialect)
    key_type = key.type.compile(dialect=dialect)
    return _CopyPlan(
        sql=f"COPY {name} ({', '.join(q(c[0]) for c in columns)}) FROM STDIN"
        + (" (FORMAT BINARY)" if types else ""),
        existing=f"SELECT {q(key.name)} FROM {name} WHERE {q(key.name)} = ANY(%b::{key_type}[])",
        columns=columns,
        types=types,
    )


def _copy_types(table: Table, names: Sequence[str], dialect: Any) -> list[str] | None:
    """The names psycopg's binary COPY goes by for these columns, or None if one has no entry here."""
    found = [_COPY_TYPES.get(table.c[n].type.compile(dialect=dialect).split("(")[0]) for n in names]
    return None if None in found else cast(list[str], found)


# SQL types of our columns -> the names psycopg's binary COPY dumpers go by (anything else: text COPY)
_COPY_TYPES = {
    "VARCHAR": "varchar",
    "TEXT": "text",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
    "BOOLEAN": "bool",
    "BYTEA": "bytea",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


def _upsert(
    session: Session, table: Table, rows: list[dict[str, Any]], key: str, update_cols: list[str]
) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET update_cols`` in one statement (PostgreSQL and SQLite).

    ``rows`` must hold each key at most once (PostgreSQL refuses to touch a row twice in one statement).
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        q = dialect.identifier_preparer.quote
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update_cols)
        _pg_unnest_insert(session, table, rows, f"ON CONFLICT ({q(key)}) DO UPDATE SET {sets}")
        return
    stmt = sqlite_insert(table)
    upsert = stmt.on_conflict_do_update(
        index_elements=[key], set_={c: getattr(stmt.excluded, c) for c in update_cols}
    )
    session.execute(upsert, rows)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


Column = tuple[str, Any, Any, bool]  # (name, bind processor or None, default, taken from the default)


@functools.lru_cache(maxsize=256)
def _insert_columns(table: Table, dialect: Any, names: frozenset[str]) -> tuple[Column, ...]:
    """The columns an insert of rows with keys ``names`` writes, in table order, and how to get each value:
    the row's, or the column's scalar Python default (as an ORM insert would). Made once per shape:
    compiling types and bind processors costs more than dumping a few hundred rows."""
    columns: list[Column] = []
    for col in table.columns:
        # bytes go to psycopg as they are (bytea); SQLAlchemy's LargeBinary processor only wraps each one
        proc = None if isinstance(col.type, LargeBinary) else col.type.bind_processor(dialect)
        default = col.default
        if col.name in names:
            columns.append((col.name, proc, None, False))
        elif default is not None and getattr(default, "is_scalar", False):
            columns.append((col.name, proc, getattr(default, "arg", None), True))
    return tuple(columns)


@functools.lru_cache(maxsize=256)
def _unnest_sql(table: Table, dialect: Any, names: frozenset[str], conflict: str) -> str:
    q = dialect.identifier_preparer.quote
    columns = _insert_columns(table, dialect, names)
    casts = ", ".join(f"%b::{table.c[c[0]].type.compile(dialect=dialect)}[]" for c in columns)
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(q(c[0]) for c in columns)}) "
        f"SELECT * FROM unnest({casts}) {conflict}"
    )


def _pg_unnest_insert(session: Session, table: Table, rows: list[dict[str, Any]], conflict: str) -> None:
    """Many rows in ONE statement with one array parameter per column: ``INSERT … SELECT * FROM unnest(…)``
    (for upserts; plain new rows go by COPY).

    psycopg's executemany sends one statement per row and SQLAlchemy's multi-row VALUES makes psycopg parse
    a huge query each time; this keeps the SQL text constant (prepared once) whatever the row count.
    """
    names = frozenset().union(*(r.keys() for r in rows))
    dialect = session.get_bind().dialect
    params: list[Any] = []
    for name, proc, default, filled in _insert_columns(table, dialect, names):
        values = [default] * len(rows) if filled else [r.get(name) for r in rows]
        params.append([proc(v) for v in values] if proc else values)
    sql = _unnest_sql(table, dialect, names, conflict)
    with _pg_raw(session, sql) as cursor:  # in SQL text order; %b: binary arrays, no per-element quoting
        cursor.execute(sql, params)


RecordKey = tuple[str, str, int]
RECEIPT_V2_FIELDS = ("duplicate_no", "verify_code", "mask_iin", "timezone", "unit", "software_version")


def _business(session: Session, now: datetime, fresh: list[_Accepted]) -> dict[RecordKey, str]:
    """Insert the business rows of newly accepted records (idempotent on their natural keys).

    ``fresh`` is in (device, epoch, seq) order; a later record of the same protocol or payment changes its
    status (one upsert per table, not one UPDATE per row). Returns the records refused as conflicts (a
    second payment for an already-paid protocol), each with its reason; those raise a ``SyncConflict``.
    """
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    protocols: dict[str, dict[str, Any]] = {}
    payments: list[tuple[_Accepted, dict[str, Any]]] = []
    latest_status: dict[str, _Accepted] = {}
    payment_records: list[_Accepted] = []  # payment attempts and settlements: their own module
    for a in fresh:
        b = dict(a.body.__dict__)  # the validated fields (bodies are flat); model_dump costs ~2.5 us more
        t = a.head.stream
        if t == "protocol":
            officer_name = b.pop("officer_name")
            if officer_name:
                rows["officer"].append({"badge": b["officer_badge"], "full_name": officer_name, "unit": ""})
            for added in PROTOCOL_V2_FIELDS:
                b.setdefault(added, None)  # v1 has none; every row of one INSERT needs the same keys
            protocols[b["number"]] = {**b, "device_id": a.device_id, "received_at": now}  # last one wins
        elif t == "payment":
            payments.append((a, {**b, "device_id": a.device_id, "received_at": now}))
        elif t == "own_card_check" or t == "recording_gap":
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t == "receipt_job":
            for name in RECEIPT_V2_FIELDS:
                b.setdefault(name, None)  # v1 has none; every row of one INSERT needs the same keys
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t == "bookmark":
            b["ended_at"] = b.pop("end", None)
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t == "segment":
            b["idx"] = b.pop("index")
            for drop in ("width", "height", "fps"):
                b.pop(drop)
            for gps in ("start_lat", "start_lon", "end_lat", "end_lon", "gps_fix_seconds", "gps_seconds"):
                b.setdefault(gps, None)  # v1 has no GPS; every row of one INSERT needs the same keys
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t in PAYMENT_ATTEMPT_STREAMS:
            payment_records.append(a)
        elif t == "device_status":
            prev = latest_status.get(a.device_id)
            if prev is None or (a.head.epoch, a.head.seq) > (prev.head.epoch, prev.head.seq):
                latest_status[a.device_id] = a
    tables: dict[str, Table] = {
        "officer": Officer.__table__,  # type: ignore[dict-item]
        "own_card_check": OwnCardCheck.__table__,  # type: ignore[dict-item]
        "receipt_job": ReceiptEvent.__table__,  # type: ignore[dict-item]
        "segment": SegmentMeta.__table__,  # type: ignore[dict-item]
        "recording_gap": RecordingGap.__table__,  # type: ignore[dict-item]
        "bookmark": Bookmark.__table__,  # type: ignore[dict-item]
    }
    _insert_ignore(session, tables["officer"], rows.get("officer", []))
    _upsert(session, Protocol.__table__, list(protocols.values()), "number", ["status", *PROTOCOL_V2_FIELDS])  # type: ignore[arg-type]
    name_rows = [
        {"protocol_number": number, "key": key[:64]}
        for number, row in protocols.items()
        for key in name_keys(row["driver_name"])
    ]  # the driver's name as search keys (server.review.search); a later record of the protocol adds none
    _insert_ignore(session, _table(ProtocolNameKey), name_rows)
    refused = _payments(session, now, payments)
    fines_for_synced_protocols(session, now, list(protocols.values()))
    for name in tables:
        if name != "officer":
            _insert_ignore(session, tables[name], rows.get(name, []))
    store_payment_records(session, now, payment_records)
    for device_id, a in latest_status.items():
        _upsert_status(session, device_id, a, now)
    return refused


def _payments(
    session: Session, now: datetime, payments: list[tuple[_Accepted, dict[str, Any]]]
) -> dict[RecordKey, str]:
    """Store payments; a payment for a protocol already paid by ANOTHER payment is an alert, not a skip."""
    if not payments:
        return {}
    numbers = sorted({row["protocol_number"] for _a, row in payments})
    paid_by: dict[str, str] = {}
    for i in range(0, len(numbers), 500):
        chunk = numbers[i : i + 500]
        paid_by.update(
            session.execute(
                select(Payment.protocol_number, Payment.id).where(Payment.protocol_number.in_(chunk))
            )
            .tuples()
            .all()
        )
    keep: dict[str, dict[str, Any]] = {}
    refused: dict[RecordKey, str] = {}
    for a, row in payments:
        number, pid = row["protocol_number"], row["id"]
        first = paid_by.setdefault(number, pid)
        if first == pid:
            keep[pid] = row  # a later record of the same payment: its status wins
            continue
        reason = "double_payment"
        detail = f"protocol {number} is already paid by payment {first}; payment {pid} was not applied"
        refused[(a.device_id, a.head.epoch, a.head.seq)] = reason
        session.add(
            SyncConflict(device_id=a.device_id, epoch=a.head.epoch, seq=a.head.seq, stored_sha256="",
                         new_sha256=a.digest, payload=a.rec.payload, sig=a.rec.sig, received_at=now,
                         kind=reason, detail=detail)
        )  # fmt: skip
        log.warning(
            "sync.double_payment",
            extra={"event": "sync.double_payment", "device": a.device_id, "protocol": number, "payment": pid,
                   "paid_by": first},
        )  # fmt: skip
    _upsert(session, Payment.__table__, list(keep.values()), "id", ["status"])  # type: ignore[arg-type]
    return refused


def _upsert_status(session: Session, device_id: str, a: _Accepted, now: datetime) -> None:
    current = session.get(DeviceStatus, device_id)
    measured = a.body.model_dump()["measured_at"]
    body = json.dumps(a.body.model_dump(mode="json"), sort_keys=True)
    if current is None:
        session.add(
            DeviceStatus(
                device_id=device_id, epoch=a.head.epoch, seq=a.head.seq, body=body, measured_at=measured,
                received_at=now,
            )
        )
    elif current.epoch != a.head.epoch or a.head.seq > current.seq:
        if current.epoch != a.head.epoch and measured < current.measured_at:
            return
        current.epoch, current.seq, current.body, current.measured_at, current.received_at = (
            a.head.epoch,
            a.head.seq,
            body,
            measured,
            now,
        )


def _advance_streams(session: Session, now: datetime, touched: dict[tuple[str, str], int]) -> None:
    """Raise each stream's max seq and contiguous high-water mark; note when a gap appeared."""
    for (device_id, epoch), seen in touched.items():
        _raise_marks(session, device_id, epoch, now, seen)


_STREAM = _table(SyncStream)
_STREAM_KEY = (_STREAM.c.device_id == bindparam("dev")) & (_STREAM.c.epoch == bindparam("ep"))
_STREAM_READ = select(_STREAM.c.hwm, _STREAM.c.max_seq, _STREAM.c.gap_since).where(_STREAM_KEY)
_STREAM_NEW = insert(_STREAM).values(
    device_id=bindparam("dev"), epoch=bindparam("ep"), hwm=0, max_seq=0, resend_requests=0,
    updated_at=bindparam("now"),
)  # fmt: skip
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


def _raise_marks(session: Session, device_id: str, epoch: str, now: datetime, seen: int) -> None:
    """Move the stream's hwm over the seqs now stored contiguously after it, and its max seq to ``seen``.

    Statements built once at import (no expression building per batch); the stream row is created if new.
    """
    key = {"dev": device_id, "ep": epoch}
    row = session.execute(_STREAM_READ, key).first()
    if row is None:  # a duplicate key here (another worker created it) raises: the worker redoes the batch
        session.execute(_STREAM_NEW, {**key, "now": now})
        start, old_max, gap_since = 0, 0, None
    else:
        start, old_max, gap_since = int(row[0]), int(row[1]), row[2]
    hwm = start
    while True:
        end = _contiguous_end(session, device_id, epoch, hwm)
        if end is None:
            break
        moved, hwm = end > hwm, end
        if not moved or end - start < _HWM_CHUNK:
            break
        start = hwm
    max_seq = max(old_max, seen, hwm)
    gap = (gap_since or now) if max_seq > hwm else None
    session.execute(_STREAM_MOVE, {**key, "hwm": hwm, "max_seq": max_seq, "gap_since": gap, "now": now})


_INBOX = _table(SyncInbox)
_RUN_AHEAD = (
    select(_INBOX.c.seq)
    .where(
        _INBOX.c.device_id == bindparam("dev"),
        _INBOX.c.epoch == bindparam("ep"),
        _INBOX.c.seq > bindparam("hwm"),
    )
    .order_by(_INBOX.c.seq)
    .limit(_HWM_CHUNK)
)


@functools.lru_cache(maxsize=4)
def _run_ahead_compiled(dialect: Any) -> Any:
    """``_RUN_AHEAD`` compiled once per dialect (compiling it costs more than running it)."""
    return _RUN_AHEAD.compile(dialect=dialect)


def _contiguous_end(session: Session, device_id: str, epoch: str, hwm: int) -> int | None:
    """The last seq of the run hwm+1, hwm+2, … stored in the inbox, looking at most ``_HWM_CHUNK`` seqs
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


def _request(session: Session, out: BatchOutcome, now: datetime, msg: Incoming, device_id: str,
             devices: DeviceRegistry) -> None:  # fmt: skip
    try:
        body, kid = open_signed(msg.payload, _ring_for(devices, msg.payload), DOMAIN_REQUEST)
        key = devices.lookup(kid)
        if key is None or key.device_id != device_id:
            raise BadSignature("request signed by another device's key")
        req = parse_control(body)
    except (EnvelopeError, BadSignature) as exc:
        reason = exc.reason if isinstance(exc, EnvelopeError) else "bad_signature"
        _dead(session, out, now, msg.topic, device_id, reason, str(exc), msg.payload)
        return
    if getattr(req, "dev", device_id) != device_id:
        _dead(
            session,
            out,
            now,
            msg.topic,
            device_id,
            "wrong_device",
            "request names another device",
            msg.payload,
        )
        return
    too_big = (
        hello_problem(req.epoch, req.max_seq) if isinstance(req, Hello)
        else dataset_in_use_problem(req.dataset, req.version) if isinstance(req, RefApplied)
        else None
    )  # fmt: skip
    if too_big is not None:
        _dead(session, out, now, msg.topic, device_id, "out_of_range", f"{req.type} {too_big}", msg.payload)
        return
    if isinstance(req, Hello):
        _raise_marks(session, device_id, req.epoch, now, req.max_seq)
        log_event(log, "sync.hello", device=device_id, epoch=req.epoch, max_seq=req.max_seq)
    elif isinstance(req, SyncRef):
        out.dataset_requests.append((device_id, req))
    elif isinstance(req, RefApplied):
        row = session.get(SyncDeviceDataset, (device_id, req.dataset))
        if row is None:
            session.add(
                SyncDeviceDataset(
                    device_id=device_id, dataset=req.dataset, version=req.version, reported_at=now
                )
            )
        else:
            row.version, row.reported_at = req.version, now
        log_event(log, "sync.dataset.in_use", device=device_id, dataset=req.dataset, version=req.version)
    else:
        _dead(
            session,
            out,
            now,
            msg.topic,
            device_id,
            "unexpected",
            f"{req.type} is not a device request",
            msg.payload,
        )


def _ring_for(devices: DeviceRegistry, data: bytes) -> KeyRing:
    """A key ring holding the key the message names (if registered), for ``open_signed``."""
    try:
        kid = parse_json(data, "request", MAX_CONTROL_BYTES).get("k")
    except (EnvelopeError, AttributeError):
        return KeyRing()
    key = devices.lookup(kid) if isinstance(kid, str) else None
    return KeyRing([key.verifier] if key else [])
