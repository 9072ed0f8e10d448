"""One ingest batch in one database transaction: verify each record, insert it idempotently with its
business row, record rejects as dead letters and different-hash duplicates as conflicts, and update the
per-stream sequence state. Returns the acks to publish, which the worker sends only after COMMIT.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.structured_log import log_event
from core.sync.control import (
    AckItem,
    Hello,
    RefApplied,
    SyncRef,
    open_signed,
    parse_control,
    topic_device,
)
from core.sync.envelope import EnvelopeError, RecordPayload, SignedRecord, decode_up_message, parse_payload
from core.sync.records import RecordBody, RecordRejected, parse_body
from core.sync.signing import DOMAIN_REQUEST, BadSignature, KeyRing
from server.db.protocols import Officer, Payment, Protocol
from server.db.sync import (
    Bookmark,
    DeviceStatus,
    OwnCardCheck,
    ReceiptEvent,
    RecordingGap,
    SegmentMeta,
    SyncConflict,
    SyncDeadLetter,
    SyncDeviceDataset,
    SyncInbox,
    SyncStream,
)
from server.ingest.registry import DeviceRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes


@dataclass
class BatchOutcome:
    acks: dict[str, list[AckItem]] = field(default_factory=lambda: defaultdict(list))
    dataset_requests: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class _Accepted:
    device_id: str
    rec: SignedRecord
    head: RecordPayload
    body: RecordBody
    digest: str


def _dead(session: Session, out: BatchOutcome, now: datetime, topic: str, device: str | None, reason: str,
          detail: str, data: bytes) -> None:  # fmt: skip
    session.add(
        SyncDeadLetter(
            device_id=device,
            topic=topic[:256],
            reason=reason[:32],
            detail=detail[:2000],
            data=data,
            received_at=now,
        )
    )
    out.dead_letters += 1
    log_event(log, "sync.dead_letter", device=device, topic=topic[:256], reason=reason, detail=detail[:300])


def ingest_batch(
    session: Session, messages: list[Incoming], devices: DeviceRegistry, now: datetime
) -> BatchOutcome:
    """Process ``messages`` in the caller's transaction (the caller commits, then publishes the acks)."""
    out = BatchOutcome()
    accepted: list[_Accepted] = []
    for msg in messages:
        where = topic_device(msg.topic)
        if where is None:
            _dead(session, out, now, msg.topic, None, "bad_topic", "not a device topic", msg.payload)
            continue
        device_id, kind = where
        if kind == "req":
            _request(session, out, now, msg, device_id, devices)
            continue
        try:
            records = decode_up_message(msg.payload)
        except EnvelopeError as exc:
            _dead(session, out, now, msg.topic, device_id, exc.reason, exc.detail, msg.payload)
            continue
        for rec in records:
            checked = _check(session, out, now, msg.topic, device_id, rec, devices)
            if checked is not None:
                accepted.append(checked)
    if accepted:
        _store(session, out, now, accepted)
    return out


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
        key.verifier.verify(b"pd-sync-v1", rec.payload, rec.sig)
    except BadSignature as exc:
        _dead(session, out, now, topic, device_id, "bad_signature", str(exc), rec.payload)
        return None
    try:
        head = parse_payload(rec.payload)
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
        body = parse_body(head.stream, head.sv, head.body)
    except RecordRejected as exc:
        _dead(session, out, now, topic, device_id, exc.reason, exc.detail, rec.payload)
        # the record is genuinely the device's: tell it, so it stops resending and raises an alert
        out.acks[device_id].append(
            AckItem(epoch=head.epoch, seq=head.seq, sha256=rec.sha256, status="rejected", reason=exc.reason)
        )
        return None
    return _Accepted(device_id, rec, head, body, rec.sha256)


def _store(session: Session, out: BatchOutcome, now: datetime, accepted: list[_Accepted]) -> None:
    keys = {(a.device_id, a.head.epoch, a.head.seq) for a in accepted}
    stored: dict[tuple[str, str, int], str] = {}
    key_list = sorted(keys)
    for i in range(0, len(key_list), 500):
        chunk = key_list[i : i + 500]
        rows = session.execute(
            select(SyncInbox.device_id, SyncInbox.epoch, SyncInbox.seq, SyncInbox.sha256).where(
                tuple_(SyncInbox.device_id, SyncInbox.epoch, SyncInbox.seq).in_(chunk)
            )
        )
        for dev, epoch, seq, digest in rows:
            stored[(dev, epoch, seq)] = digest
    new_rows: list[dict[str, Any]] = []
    fresh: list[_Accepted] = []
    for a in sorted(accepted, key=lambda a: (a.device_id, a.head.epoch, a.head.seq)):
        key = (a.device_id, a.head.epoch, a.head.seq)
        item = {"epoch": a.head.epoch, "seq": a.head.seq, "sha256": a.digest}
        if key in stored:
            if stored[key] == a.digest:
                out.duplicates += 1
                out.acks[a.device_id].append(AckItem(**item, status="dup"))
            else:
                out.conflicts += 1
                session.add(
                    SyncConflict(device_id=a.device_id, epoch=a.head.epoch, seq=a.head.seq, stored_sha256=stored[key],
                                 new_sha256=a.digest, payload=a.rec.payload, sig=a.rec.sig, received_at=now)
                )  # fmt: skip
                log.warning(
                    "sync.conflict",
                    extra={
                        "event": "sync.conflict",
                        "device": a.device_id,
                        "epoch": a.head.epoch,
                        "seq": a.head.seq,
                    },
                )
                out.acks[a.device_id].append(
                    AckItem(**item, status="conflict", reason="different payload stored")
                )
            continue
        stored[key] = a.digest
        new_rows.append(
            {
                "device_id": a.device_id,
                "epoch": a.head.epoch,
                "seq": a.head.seq,
                "record_id": a.head.id,
                "stream": a.head.stream,
                "sv": a.head.sv,
                "sha256": a.digest,
                "payload": a.rec.payload,
                "sig": a.rec.sig,
                "kid": a.rec.kid,
                "received_at": now,
            }
        )
        fresh.append(a)
        out.acks[a.device_id].append(AckItem(**item, status="ok"))
    if new_rows:
        session.execute(insert(SyncInbox), new_rows)
        _business(session, now, fresh)
        out.accepted += len(new_rows)
    _advance_streams(session, now, {(a.device_id, a.head.epoch): a.head.seq for a in accepted})


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)).on_conflict_do_nothing()
    session.execute(stmt, rows)


def _business(session: Session, now: datetime, fresh: list[_Accepted]) -> None:
    """Insert the business rows of newly accepted records (idempotent on their natural keys)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    status_updates: list[tuple[str, str, str]] = []
    latest_status: dict[str, _Accepted] = {}
    for a in fresh:
        b = a.body.model_dump()
        t = a.head.stream
        if t == "protocol":
            officer_name = b.pop("officer_name")
            if officer_name:
                rows["officer"].append({"badge": b["officer_badge"], "full_name": officer_name, "unit": ""})
            rows[t].append({**b, "device_id": a.device_id, "received_at": now})
            status_updates.append(("protocol", b["number"], b["status"]))
        elif t == "payment":
            rows[t].append({**b, "device_id": a.device_id, "received_at": now})
            status_updates.append(("payment", b["id"], b["status"]))
        elif t == "own_card_check" or t == "receipt_job":
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t == "segment":
            b["idx"] = b.pop("index")
            for drop in ("width", "height", "fps"):
                b.pop(drop)
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t == "recording_gap" or t == "bookmark":
            rows[t].append({**b, "record_id": a.head.id, "device_id": a.device_id})
        elif t == "device_status":
            prev = latest_status.get(a.device_id)
            if prev is None or (a.head.epoch, a.head.seq) > (prev.head.epoch, prev.head.seq):
                latest_status[a.device_id] = a
    tables: dict[str, Table] = {
        "officer": Officer.__table__,  # type: ignore[dict-item]
        "protocol": Protocol.__table__,  # type: ignore[dict-item]
        "payment": Payment.__table__,  # type: ignore[dict-item]
        "own_card_check": OwnCardCheck.__table__,  # type: ignore[dict-item]
        "receipt_job": ReceiptEvent.__table__,  # type: ignore[dict-item]
        "segment": SegmentMeta.__table__,  # type: ignore[dict-item]
        "recording_gap": RecordingGap.__table__,  # type: ignore[dict-item]
        "bookmark": Bookmark.__table__,  # type: ignore[dict-item]
    }
    for name in tables:
        _insert_ignore(session, tables[name], rows.get(name, []))
    for kind, key, status in status_updates:  # a later record of the same protocol/payment changes its status
        if kind == "protocol":
            session.execute(update(Protocol).where(Protocol.number == key).values(status=status))
        else:
            session.execute(update(Payment).where(Payment.id == key).values(status=status))
    for device_id, a in latest_status.items():
        _upsert_status(session, device_id, a)


def _upsert_status(session: Session, device_id: str, a: _Accepted) -> None:
    current = session.get(DeviceStatus, device_id)
    measured = a.body.model_dump()["measured_at"]
    body = json.dumps(a.body.model_dump(mode="json"), sort_keys=True)
    if current is None:
        session.add(
            DeviceStatus(
                device_id=device_id, epoch=a.head.epoch, seq=a.head.seq, body=body, measured_at=measured
            )
        )
    elif current.epoch != a.head.epoch or a.head.seq > current.seq:
        if current.epoch != a.head.epoch and measured < current.measured_at:
            return
        current.epoch, current.seq, current.body, current.measured_at = (
            a.head.epoch,
            a.head.seq,
            body,
            measured,
        )


def _advance_streams(session: Session, now: datetime, touched: dict[tuple[str, str], int]) -> None:
    """Raise each stream's max seq and contiguous high-water mark; note when a gap appeared."""
    for (device_id, epoch), seen in touched.items():
        stream = session.get(SyncStream, (device_id, epoch))
        if stream is None:
            stream = SyncStream(
                device_id=device_id, epoch=epoch, hwm=0, max_seq=0, resend_requests=0, updated_at=now
            )
            session.add(stream)
            session.flush()
        _raise_marks(session, stream, now, seen)


def _raise_marks(session: Session, stream: SyncStream, now: datetime, seen: int) -> None:
    hwm = stream.hwm
    while True:
        seqs = session.scalars(
            select(SyncInbox.seq)
            .where(
                SyncInbox.device_id == stream.device_id, SyncInbox.epoch == stream.epoch, SyncInbox.seq > hwm
            )
            .order_by(SyncInbox.seq)
            .limit(2000)
        ).all()
        moved = False
        for seq in seqs:
            if seq != hwm + 1:
                break
            hwm = seq
            moved = True
        if not moved or len(seqs) < 2000:
            break
    max_seq = max(stream.max_seq, seen, hwm)
    session.execute(
        update(SyncStream)
        .where(SyncStream.device_id == stream.device_id, SyncStream.epoch == stream.epoch)
        .values(
            hwm=case((SyncStream.hwm < hwm, hwm), else_=SyncStream.hwm),
            max_seq=case((SyncStream.max_seq < max_seq, max_seq), else_=SyncStream.max_seq),
            gap_since=(stream.gap_since or now) if max_seq > hwm else None,
            updated_at=now,
        )
    )
    session.refresh(stream)


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
    if isinstance(req, Hello):
        stream = session.get(SyncStream, (device_id, req.epoch))
        if stream is None:
            stream = SyncStream(
                device_id=device_id, epoch=req.epoch, hwm=0, max_seq=0, resend_requests=0, updated_at=now
            )
            session.add(stream)
            session.flush()
        _raise_marks(session, stream, now, req.max_seq)
        log_event(log, "sync.hello", device=device_id, epoch=req.epoch, max_seq=req.max_seq)
    elif isinstance(req, SyncRef):
        out.dataset_requests.append((device_id, dict(req.have)))
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
        kid = json.loads(data.decode("utf-8")).get("k")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return KeyRing()
    key = devices.lookup(kid) if isinstance(kid, str) else None
    return KeyRing([key.verifier] if key else [])
