"""The checks of one up-message, before anything of it is stored: its topic names a device, its wire format
decodes, its signature verifies with that device's key, and each record's header and body are well formed,
of a known record type and version (``server.ingest.record_types``) and within the columns that will hold
them. What fails is dead-lettered with its reason; a record that is the device's own but is refused is also
acked ``rejected``, so the device stops resending it and raises an alert."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.sync.control import AckEntry, topic_device
from core.sync.envelope import (
    EnvelopeError,
    SignedBatch,
    SignedRecord,
    decode_up,
    parse_payload,
    valid_device_id,
)
from core.sync.records import RecordRejected, validate_body
from core.sync.signing import DOMAIN_BATCH, BadSignature
from server.ingest.control_requests import handle_request
from server.ingest.limits import body_problem, fits_device_id, head_problem
from server.ingest.outcome import Accepted, BatchOutcome, Incoming, dead
from server.ingest.record_types import record_type
from server.ingest.registry import DeviceRegistry


def check_message(session: Session, out: BatchOutcome, now: datetime, msg: Incoming,
                  devices: DeviceRegistry) -> list[Accepted]:  # fmt: skip
    """The records of one message that passed every check; the rest dead-lettered (and acked if rejected).
    A control request is handled here whole (``server.ingest.control_requests``)."""
    where = topic_device(msg.topic)
    if where is None or not valid_device_id(where[0]) or not fits_device_id(where[0]):
        dead(session, out, now, msg.topic, None, "bad_topic", "not a device topic", msg.payload)
        return []
    device_id, kind = where
    if kind == "req":
        handle_request(session, out, now, msg, device_id, devices)
        return []
    try:
        up = decode_up(msg.payload)
    except EnvelopeError as exc:
        dead(session, out, now, msg.topic, device_id, exc.reason, exc.detail, msg.payload)
        return []
    return _check_batch(session, out, now, msg, device_id, up, devices)


def _check_batch(session: Session, out: BatchOutcome, now: datetime, msg: Incoming, device_id: str,
                 batch: SignedBatch, devices: DeviceRegistry) -> list[Accepted]:  # fmt: skip
    """A signed batch: one key check and one signature verification for all its records."""
    key = devices.lookup(batch.kid)
    if key is None:
        detail = f"key id {batch.kid[:32]!r} unknown"
        dead(session, out, now, msg.topic, device_id, "unknown_key", detail, msg.payload)
        return []
    if key.device_id != device_id:
        detail = f"key of {key.device_id} used on the topic of {device_id}"
        dead(session, out, now, msg.topic, device_id, "wrong_device", detail, msg.payload)
        return []
    try:
        key.verifier.verify(DOMAIN_BATCH, batch.manifest, batch.sig)
    except BadSignature as exc:
        dead(session, out, now, msg.topic, device_id, "bad_signature", str(exc), msg.payload)
        return []
    found: list[Accepted] = []
    for payload, digest in zip(batch.payloads, batch.digests, strict=True):
        rec = SignedRecord(payload, batch.sig, batch.kid)
        checked = _check_signed(session, out, now, msg.topic, device_id, rec, batch, digest.hex())
        if checked is not None:
            found.append(checked)
    return found


def _check_signed(session: Session, out: BatchOutcome, now: datetime, topic: str, device_id: str,
                  rec: SignedRecord, batch: SignedBatch | None, digest: str) -> Accepted | None:  # fmt: skip
    """Checks after the signature verified: the payload's shape, its device, its record type and its body."""
    try:
        head = parse_payload(rec.payload)
        too_big = head_problem(head)
        if too_big is not None:
            raise EnvelopeError("out_of_range", too_big)
    except EnvelopeError as exc:
        dead(session, out, now, topic, device_id, exc.reason, exc.detail, rec.payload)
        return None
    if head.dev != device_id:
        dead(
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
        kind = record_type(head.stream, head.sv)
        body = validate_body(kind.model, head.body)
        too_big = body_problem(head.stream, body)
        if too_big is not None:
            raise RecordRejected("out_of_range", too_big)
    except RecordRejected as exc:
        dead(session, out, now, topic, device_id, exc.reason, exc.detail, rec.payload)
        # the record is genuinely the device's: tell it, so it stops resending and raises an alert
        out.acks[device_id].append(AckEntry(head.epoch, head.seq, digest, "rejected", exc.reason))
        return None
    return Accepted(device_id, rec, head, body, kind, digest, batch)
