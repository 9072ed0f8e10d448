"""One ingest batch in one database transaction: check each message (``checks``), store its records new to
the inbox (``inbox``) with their business rows (``business``, as the table of record types says), record
rejects as dead letters and different-hash duplicates as conflicts, and last raise the marks of every stream
the batch's records and hellos reached (``stream_marks``, in key order). Returns the acks to publish, which the worker sends only after COMMIT.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from core.sync.control import AckEntry
from server.db.sync import SyncBatch, SyncConflict
from server.ingest.bulk_write import insert_ignore, table_of
from server.ingest.business import write_business
from server.ingest.checks import check_message
from server.ingest.inbox import store_new
from server.ingest.outcome import (
    DEAD_LETTER_KEPT_BYTES,
    Accepted,
    BatchOutcome,
    Incoming,
    RecordKey,
    dead,
    dead_letter,
)
from server.ingest.registry import DeviceRegistry
from server.ingest.stream_marks import advance_streams

__all__ = ["DEAD_LETTER_KEPT_BYTES", "BatchOutcome", "Incoming", "dead_letter", "ingest_batch"]
log = logging.getLogger(__name__)


def ingest_batch(
    session: Session, messages: list[Incoming], devices: DeviceRegistry, now: datetime
) -> BatchOutcome:
    """Process ``messages`` in the caller's transaction (the caller commits, then publishes the acks).

    A message whose checks raise anything is dead-lettered with the error (reason ``internal_error``) and
    the others go on; an error while storing fails the transaction, and the worker then takes the batch's
    messages one at a time (``server.ingest.worker``)."""
    out = BatchOutcome()
    accepted: list[Accepted] = []
    for msg in messages:
        try:
            accepted.extend(check_message(session, out, now, msg, devices))
        except Exception as exc:  # no message may stop the others: it is kept aside with the error
            log.exception("sync.check_failed", extra={"event": "sync.check_failed", "topic": msg.topic[:256]})
            dead(session, out, now, msg.topic, None, "internal_error", f"{type(exc).__name__}: {exc}"[:2000],
                 msg.payload)  # fmt: skip
    if accepted:
        _store(session, out, now, accepted)
    advance_streams(session, now, out.marks)
    return out


def _store(session: Session, out: BatchOutcome, now: datetime, accepted: list[Accepted]) -> None:
    """Insert the records new to ``sync_inbox`` and their business rows; ack the rest as dup or conflict."""
    unique: dict[RecordKey, Accepted] = {}
    repeats: list[Accepted] = []  # the same key twice in this batch
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
    insert_ignore(session, table_of(SyncBatch), list(batches.values()))
    inserted, stored = store_new(session, unique, now)
    fresh = [a for k, a in unique.items() if k in inserted]
    for key, a in unique.items():
        if key not in inserted:
            _dup_or_conflict(session, out, now, a, stored.get(key))
    for a in repeats:
        _dup_or_conflict(session, out, now, a, unique[a.key].digest)
    if fresh:
        refused = write_business(session, now, fresh)
        for a in fresh:
            reason = refused.get(a.key)
            status: Literal["ok", "conflict"] = "ok" if reason is None else "conflict"
            out.acks[a.device_id].append(AckEntry(a.head.epoch, a.head.seq, a.digest, status, reason))
        out.accepted += len(fresh)
    for a in accepted:
        out.saw(a.device_id, a.head.epoch, a.head.seq)


def _dup_or_conflict(
    session: Session, out: BatchOutcome, now: datetime, a: Accepted, stored: str | None
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
