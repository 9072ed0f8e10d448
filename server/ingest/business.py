"""The business rows of the records newly stored in the inbox, written as their entries in the table of record
types say (``server.ingest.record_types``): a stream's rows in one statement per table, the streams in the
table's order, each by its conflict rule. Returns the records refused as conflicts with their reason (a second
payment of a protocol already paid); those become ``SyncConflict`` rows and are acked ``conflict``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.protocols import Payment
from server.db.sync import DeviceStatus, SyncConflict
from server.ingest.bulk_write import insert_ignore, upsert
from server.ingest.outcome import Accepted, RecordKey
from server.ingest.payment_attempts import store_attempts
from server.ingest.record_types import STREAM_ORDER, Conflict, RecordType, Write

log = logging.getLogger(__name__)
Written = list[tuple[Accepted, dict[str, Any]]]


def write_business(session: Session, now: datetime, fresh: list[Accepted]) -> dict[RecordKey, str]:
    """Write the business rows of ``fresh`` (in (device, epoch, seq) order); return the refused ones."""
    by_stream: dict[str, Written] = {}
    for a in fresh:
        kind = a.kind
        if kind.write is not Write.NONE:
            by_stream.setdefault(kind.stream, []).append(
                (a, a.kind.row(a, now) if not kind.whole_body else {})
            )
    refused: dict[RecordKey, str] = {}
    later: list[tuple[RecordType, Written]] = []
    for stream in STREAM_ORDER:
        written = by_stream.get(stream)
        if not written:
            continue
        kind = written[0][0].kind
        for step in kind.first:
            step(session, now, written)
        refused.update(_WRITERS[kind.conflict](session, now, kind, written) or {})
        later.append((kind, written))
    for kind, written in later:
        for step in kind.then:
            step(session, now, written)
    return refused


def _first_wins(session: Session, now: datetime, kind: RecordType, written: Written) -> None:
    assert kind.table is not None
    insert_ignore(session, kind.table, [row for _a, row in written])


def _later_wins(session: Session, now: datetime, kind: RecordType, written: Written) -> None:
    assert kind.table is not None
    latest = {row[kind.key]: row for _a, row in written}  # in stream order: the last one wins
    upsert(session, kind.table, list(latest.values()), kind.key, kind.updates)


def _one_payment_per_protocol(
    session: Session, now: datetime, kind: RecordType, written: Written
) -> dict[RecordKey, str]:
    """Store payments; a payment for a protocol already paid by ANOTHER payment is an alert, not a skip."""
    assert kind.table is not None
    numbers = sorted({row["protocol_number"] for _a, row in written})
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
    for a, row in written:
        number, pid = row["protocol_number"], row[kind.key]
        first = paid_by.setdefault(number, pid)
        if first == pid:
            keep[pid] = row  # a later record of the same payment: its status wins
            continue
        reason = "double_payment"
        detail = f"protocol {number} is already paid by payment {first}; payment {pid} was not applied"
        refused[a.key] = reason
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
    upsert(session, kind.table, list(keep.values()), kind.key, kind.updates)
    return refused


def _higher_revision(session: Session, now: datetime, kind: RecordType, written: Written) -> None:
    assert kind.table is not None
    store_attempts(session, kind.table, kind.key, [row for _a, row in written])


def _newest_status(session: Session, now: datetime, kind: RecordType, written: Written) -> None:
    """One row per device: its latest status by (epoch, seq); a new epoch only with a later measurement."""
    latest: dict[str, Accepted] = {}
    for a, _row in written:
        prev = latest.get(a.device_id)
        if prev is None or (a.head.epoch, a.head.seq) > (prev.head.epoch, prev.head.seq):
            latest[a.device_id] = a
    for device_id, a in latest.items():
        current = session.get(DeviceStatus, device_id)
        measured = a.body.model_dump()["measured_at"]
        body = json.dumps(a.body.model_dump(mode="json"), sort_keys=True)
        if current is None:
            session.add(DeviceStatus(device_id=device_id, epoch=a.head.epoch, seq=a.head.seq, body=body,
                                     measured_at=measured, received_at=now))  # fmt: skip
        elif current.epoch != a.head.epoch or a.head.seq > current.seq:
            if current.epoch != a.head.epoch and measured < current.measured_at:
                continue
            current.epoch, current.seq, current.body = a.head.epoch, a.head.seq, body
            current.measured_at, current.received_at = measured, now


_WRITERS: dict[Conflict, Callable[[Session, datetime, RecordType, Written], dict[RecordKey, str] | None]] = {
    Conflict.FIRST_WINS: _first_wins,
    Conflict.LATER_WINS: _later_wins,
    Conflict.ONE_PAYMENT_PER_PROTOCOL: _one_payment_per_protocol,
    Conflict.HIGHER_REVISION: _higher_revision,
    Conflict.NEWEST_STATUS: _newest_status,
}
