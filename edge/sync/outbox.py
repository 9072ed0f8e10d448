"""The durable outbox: a record to sync is written in the same transaction as the business row it describes.

Life of a row: ``enqueue`` (inside the business transaction; validates the body, stamps the dataset versions
in use) → ``seal_pending`` (the sender makes the exact signed payload once, chained by sha256 to the previous
one of the same epoch) → sent, maybe many times → freed only by ``apply_acks`` with a server-signed ack for
exactly its hash. ``seq`` is SQLite AUTOINCREMENT: never reused; each database has its own epoch.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.sync.control import AckEntry, AckItem
from core.sync.envelope import make_payload, sha256_hex
from core.sync.records import CURRENT_VERSION, PRIORITY, validate_for_enqueue
from core.sync.signing import DOMAIN_RECORD, Signer
from edge.db.base import Base, UtcDateTime
from edge.db.meta import DeviceMeta, database_epoch, get_meta
from edge.sync.datasets import active_versions

PENDING, ACKED, REJECTED = "pending", "acked", "rejected"


class OutboxRecord(Base):
    """One record to sync: its identity and its delivery state. A narrow row: an ack rewrites only this
    (the content, about 1.5 KB a record, is in ``outbox_content``)."""

    __tablename__ = "outbox"
    __table_args__ = (
        # only pending rows are indexed (e0007): an ack removes one entry instead of moving it within the index
        Index("ix_outbox_pending", "priority", "seq", sqlite_where=text("state = 'pending'")),
        {"sqlite_autoincrement": True},  # a sequence number is never reused
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    epoch: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36), unique=True)
    record_type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(
        String(16), default=PENDING
    )  # pending | acked | rejected (pending rows are in the partial index ix_outbox_pending)
    # added by e0005 (sync)
    sv: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    refs: Mapped[str] = mapped_column(Text, default="{}")
    kid: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # of the payload; None = not sealed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)  # unix seconds
    acked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ack_status: Mapped[str | None] = mapped_column(
        String(16), nullable=True
    )  # ok | dup | conflict | rejected
    ack_detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class OutboxContent(Base):
    """What a record says, written once: the body as queued and, once sealed, the exact signed payload."""

    __tablename__ = "outbox_content"

    seq: Mapped[int] = mapped_column(Integer, ForeignKey("outbox.seq"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # exact signed bytes
    sig: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


def _outbox_table() -> Table:
    """The Core table, for executemany UPDATEs with bound parameters."""
    return cast(Table, OutboxRecord.__table__)


def canonical_json(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def enqueue(session: Session, record_type: str, body: dict[str, Any], *, now: datetime) -> int:
    """Queue ``body`` for sync inside the caller's transaction and return its sequence number; ``now`` (the
    caller's clock) is when it was queued.

    The body is validated against the current version of its record type (``core.sync.records``); a bad
    body raises ``RecordRejected`` and nothing is written, so the caller's transaction rolls back whole.
    """
    model = validate_for_enqueue(record_type, body)
    row = OutboxRecord(
        epoch=database_epoch(session),
        record_id=str(uuid.uuid4()),
        record_type=record_type,
        sv=CURRENT_VERSION[record_type],
        priority=PRIORITY.get(record_type, 5),
        refs=canonical_json(active_versions(session)),
        created_at=now,
        state=PENDING,
        attempts=0,
        next_attempt_at=0.0,
    )
    session.add(row)
    session.flush()
    session.add(OutboxContent(seq=row.seq, body=canonical_json(model.to_body())))
    session.flush()
    return row.seq


def enqueue_many(
    session: Session, records: Iterable[tuple[str, dict[str, Any]]], *, now: datetime
) -> int:
    """Queue many ``(record_type, body)`` in the caller's transaction with one executemany INSERT (a backlog,
    a bulk import); same validation as ``enqueue``, all or nothing. Returns how many were queued."""
    epoch = database_epoch(session)
    refs = canonical_json(active_versions(session))
    rows: list[dict[str, Any]] = []
    bodies: list[str] = []
    for record_type, body in records:
        model = validate_for_enqueue(record_type, body)
        bodies.append(canonical_json(model.to_body()))
        rows.append(
            {
                "epoch": epoch,
                "record_id": str(uuid.uuid4()),
                "record_type": record_type,
                "sv": CURRENT_VERSION[record_type],
                "priority": PRIORITY.get(record_type, 5),
                "refs": refs,
                "created_at": now,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": 0.0,
            }
        )
    if rows:
        table = _outbox_table()
        conn = session.connection()
        seqs = conn.execute(
            insert(table).returning(table.c.seq, sort_by_parameter_order=True), rows
        ).scalars()
        content = [{"seq": seq, "body": body} for seq, body in zip(seqs, bodies, strict=True)]
        conn.execute(insert(cast(Table, OutboxContent.__table__)), content)
    return len(rows)


def _chain_key(epoch: str) -> str:
    return f"sync_chain_head:{epoch}"


def seal_pending(
    session: Session, device_id: str, signer: Signer, limit: int = 5000, after_seq: int = 0
) -> int:
    """Make and sign the payload of unsealed rows, in seq order, in the caller's transaction; return how many.

    Each payload carries the sha256 of the previous payload of the same epoch (a hash chain). Rows are
    sealed in seq order, so a caller that knows every row up to ``after_seq`` is sealed passes it and the
    query reads only newer rows (a rowid range, not a scan of the whole outbox).
    """
    rows = session.execute(
        select(OutboxRecord, OutboxContent)
        .join(OutboxContent, OutboxContent.seq == OutboxRecord.seq)
        .where(OutboxRecord.seq > after_seq, OutboxRecord.sha256.is_(None))
        .order_by(OutboxRecord.seq)
        .limit(limit)
    ).all()
    heads: dict[str, str] = {}
    for row, content in rows:
        if row.epoch not in heads:
            heads[row.epoch] = get_meta(session, _chain_key(row.epoch)) or ""
        payload = make_payload(
            dev=device_id,
            epoch=row.epoch,
            seq=row.seq,
            record_id=row.record_id,
            stream=row.record_type,
            sv=row.sv,
            ts=row.created_at,
            prev=heads[row.epoch],
            refs=json.loads(row.refs),
            body=json.loads(content.body),
        )
        content.payload = payload
        content.sig = signer.sign(DOMAIN_RECORD, payload)
        row.kid = signer.kid
        row.sha256 = sha256_hex(payload)
        heads[row.epoch] = row.sha256
    for epoch, head in heads.items():
        session.merge(DeviceMeta(key=_chain_key(epoch), value=head))
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class Sendable:
    """What the sender needs of a due row: its bytes, where it goes, and the hash its ack must name.
    (Messages are signed per batch, so the row's own signature is not read.)"""

    seq: int
    epoch: str
    stream: str
    payload: bytes
    sha256: str
    priority: int = 5


def _due_sql(after: bool) -> str:
    """The SELECT of ``due_rows`` as SQLite text, made once per shape (``?`` = now, [priority, seq,] limit)."""
    t = _outbox_table().c
    c = cast(Table, OutboxContent.__table__).c
    stmt = (
        select(t.seq, t.epoch, t.record_type, c.payload, t.sha256, t.priority)
        .join_from(_outbox_table(), OutboxContent.__table__, c.seq == t.seq)
        .where(
            t.state == literal_column("'pending'"),  # a literal: SQLite uses the partial index only then
            t.sha256.is_not(None),
            t.next_attempt_at <= bindparam("now"),
        )
        .order_by(t.priority, t.seq)
    )
    if after:  # a row value: SQLite seeks the index to the cursor instead of scanning the rows before it
        stmt = stmt.where(tuple_(t.priority, t.seq) > tuple_(bindparam("prio"), bindparam("seq")))
    return str(stmt.compile(dialect=sqlite.dialect(paramstyle="named"))) + " LIMIT :limit"


_DUE_SQL = {after: _due_sql(after) for after in (False, True)}
_DUE_COUNT_SQL = text(
    "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state = 'pending' AND sha256 IS NOT NULL "
    "AND next_attempt_at <= :now LIMIT :cap)"
)


def due_count(session: Session, now_ts: float, cap: int) -> int:
    """How many sealed, unacked rows are due now (in flight or not), counting no further than ``cap``."""
    return int(session.execute(_DUE_COUNT_SQL, {"now": now_ts, "cap": cap}).scalar_one())


def due_rows(
    session: Session, now_ts: float, exclude: set[int], limit: int, after: tuple[int, int] | None = None
) -> list[Sendable]:
    """Sealed, unacked rows whose next attempt is due, by (priority, seq), skipping those in flight.

    ``after`` = the ``(priority, seq)`` of the last row handed out in this pass: only rows after it are
    read, so a drain reads each row once instead of re-reading the whole window on every fill.
    """
    params: dict[str, Any] = {"now": now_ts, "limit": limit + len(exclude)}
    if after is not None:
        params["prio"], params["seq"] = after
    # run on the DBAPI cursor: plain tuples, no statement compiling or result machinery per call
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(_DUE_SQL[after is not None], params)
        fetched = cursor.fetchall()
    finally:
        cursor.close()
    out: list[Sendable] = []
    for seq, epoch, stream, payload, digest, priority in fetched:
        if seq in exclude:
            continue
        out.append(Sendable(seq, epoch, stream, payload, digest, priority))
        if len(out) >= limit:
            break
    return out


# ``seq IN (SELECT value FROM json_each(?))``: one bound parameter whatever the count, and SQLite looks each
# seq up by rowid (a join of the table with json_each could be planned as a scan per element).
_HELD = text(
    "SELECT seq, epoch, sha256 FROM outbox "
    "WHERE seq IN (SELECT value FROM json_each(:seqs)) AND state = 'pending'"
)
_MARK = (
    "UPDATE outbox SET state = :state, acked_at = :now, ack_status = :status, ack_detail = :detail "
    "WHERE seq IN (SELECT value FROM json_each(:seqs)) AND state = 'pending' RETURNING seq"
)  # run on the DBAPI cursor: up to 500 seqs come back per ack, plain tuples instead of result rows


class SentHash(Protocol):
    """What a sent row's ack must name: the row's epoch and the sha256 of its payload."""

    @property
    def epoch(self) -> str: ...

    @property
    def sha256(self) -> str: ...


class RowHash(NamedTuple):
    """The epoch and sha256 read from an outbox row."""

    epoch: str
    sha256: str


def apply_acks(
    session: Session,
    items: Iterable[AckItem | AckEntry],
    now: datetime,
    known: Mapping[int, SentHash] | None = None,
) -> list[int]:
    """Mark rows delivered (or rejected) for acks whose epoch, seq AND sha256 match; return the seqs freed.

    An ack for a hash we do not hold changes nothing (a forged or stale ack can never free a real row).
    ``known`` maps seqs to the epoch and sha256 the caller read from their rows (the sender's records in
    flight; a sealed row's hash never changes): those are checked without reading the rows again, the
    others with one SELECT. Then one UPDATE per ack status, in the same transaction, which frees only rows
    still pending; each statement takes the seqs as one JSON array, however many there are.
    """
    wanted = {item.seq: item for item in items}  # the last ack of a seq wins
    if not wanted:
        return []
    known = known or {}
    unknown = sorted(seq for seq in wanted if seq not in known)
    held: dict[int, RowHash] = {}
    if unknown:
        found = session.execute(_HELD, {"seqs": json.dumps(unknown)}).all()
        held = {int(seq): RowHash(epoch, digest) for seq, epoch, digest in found}
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for seq, item in wanted.items():
        row = known.get(seq) or held.get(seq)
        if row is not None and row.epoch == item.epoch and row.sha256 == item.sha256:
            groups[(item.status, item.reason)].append(seq)
    freed: list[int] = []
    if not groups:
        return freed
    conn = session.connection()
    at = _acked_at_processor(conn.dialect)(now)  # stored as the ORM stores it (UTC, SQLite's text form)
    cursor = conn.connection.cursor()
    try:
        for (status, reason), group in groups.items():
            state = ACKED if status in ("ok", "dup") else REJECTED
            params = {
                "state": state,
                "now": at,
                "status": status,
                "detail": reason,
                "seqs": json.dumps(group),
            }
            cursor.execute(_MARK, params)
            freed.extend(seq for (seq,) in cursor.fetchall())
    finally:
        cursor.close()
    freed.sort()
    return freed


@functools.lru_cache(maxsize=2)
def _acked_at_processor(dialect: Any) -> Callable[[datetime], Any]:
    """``acked_at``'s bind processing (``UtcDateTime`` then SQLite's DATETIME text), made once."""
    proc = _outbox_table().c.acked_at.type.bind_processor(dialect)
    return proc if proc is not None else (lambda value: value)


def attempts(session: Session, seqs: list[int]) -> dict[int, int]:
    """How many times each of ``seqs`` was sent without an ack in time (for the next backoff)."""
    query = select(OutboxRecord.seq, OutboxRecord.attempts).where(OutboxRecord.seq.in_(seqs))
    return dict(session.execute(query).tuples().all())


def postpone(session: Session, seqs: Iterable[int], delay_for: dict[int, float], now_ts: float) -> None:
    """After an ack timeout: count the attempt and set the next one ``delay_for[seq]`` seconds ahead."""
    params = [{"k_seq": seq, "next_at": now_ts + delay_for[seq]} for seq in seqs]
    if not params:
        return
    table = _outbox_table()
    session.connection().execute(
        update(table)
        .where(table.c.seq == bindparam("k_seq"), table.c.state == PENDING)
        .values(attempts=table.c.attempts + 1, next_attempt_at=bindparam("next_at")),
        params,
    )


def make_due(session: Session, epoch: str, ranges: Iterable[tuple[int, int]]) -> int:
    """Server asked for a resend: make those pending rows due now; return how many."""
    total = 0
    for lo, hi in ranges:
        result = session.execute(
            update(OutboxRecord)
            .where(
                OutboxRecord.epoch == epoch,
                OutboxRecord.seq >= lo,
                OutboxRecord.seq <= hi,
                OutboxRecord.state == PENDING,
            )
            .values(next_attempt_at=0.0)
        )
        total += int(result.rowcount)  # type: ignore[attr-defined]
    return total


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    unsealed: int
    acked: int
    rejected: int
    oldest_pending_at: datetime | None
    max_seq: int


def max_seq(session: Session) -> int:
    """The highest sequence number used so far (0 for an empty outbox): one rowid lookup.

    The sender asks on every step: run on the DBAPI cursor (no ORM statement execution per call)."""
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute("SELECT max(seq) FROM outbox")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return int(row[0] or 0) if row else 0


def stats(session: Session) -> OutboxStats:
    """Counts by state over the whole outbox (a scan: for status reports, not for the send path)."""
    counts = dict(
        session.execute(select(OutboxRecord.state, func.count()).group_by(OutboxRecord.state)).tuples().all()
    )
    unsealed = session.scalar(select(func.count()).where(OutboxRecord.sha256.is_(None))) or 0
    oldest = session.scalar(select(func.min(OutboxRecord.created_at)).where(OutboxRecord.state == PENDING))
    return OutboxStats(
        pending=counts.get(PENDING, 0),
        unsealed=int(unsealed),
        acked=counts.get(ACKED, 0),
        rejected=counts.get(REJECTED, 0),
        oldest_pending_at=oldest,
        max_seq=max_seq(session),
    )
