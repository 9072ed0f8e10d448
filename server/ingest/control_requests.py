"""A device's signed control requests on its ``req`` topic: ``hello`` (its epoch and highest seq: the stream's
marks are raised), ``sync_ref`` (the reference data it holds: answered by the worker after COMMIT),
``ref_applied`` (the dataset version now in use) and ``credit_ask`` (records it wants to send: answered by the
worker's admission after COMMIT). Anything else, or anything unsigned, out of range or naming
another device, is dead-lettered."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from core.structured_log import log_event
from core.sync.control import (
    MAX_CONTROL_BYTES,
    CreditAsk,
    Hello,
    RefApplied,
    SyncRef,
    open_signed,
    parse_control,
)
from core.sync.envelope import EnvelopeError, parse_json
from core.sync.signing import DOMAIN_REQUEST, BadSignature, KeyRing
from server.db.sync import SyncDeviceDataset
from server.ingest.limits import dataset_in_use_problem, hello_problem
from server.ingest.outcome import BatchOutcome, Incoming, dead
from server.ingest.registry import DeviceRegistry

log = logging.getLogger(__name__)


def handle_request(session: Session, out: BatchOutcome, now: datetime, msg: Incoming, device_id: str,
                   devices: DeviceRegistry) -> None:  # fmt: skip
    """Verify and apply one control request of ``device_id`` in the caller's transaction."""
    try:
        body, kid = open_signed(msg.payload, _ring_for(devices, msg.payload), DOMAIN_REQUEST)
        key = devices.lookup(kid)
        if key is None or key.device_id != device_id:
            raise BadSignature("request signed by another device's key")
        req = parse_control(body)
    except (EnvelopeError, BadSignature) as exc:
        reason = exc.reason if isinstance(exc, EnvelopeError) else "bad_signature"
        dead(session, out, now, msg.topic, device_id, reason, str(exc), msg.payload)
        return
    if getattr(req, "dev", device_id) != device_id:
        dead(
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
        dead(session, out, now, msg.topic, device_id, "out_of_range", f"{req.type} {too_big}", msg.payload)
        return
    if isinstance(req, Hello):
        out.saw(device_id, req.epoch, req.max_seq)
        log_event(log, "sync.hello", device=device_id, epoch=req.epoch, max_seq=req.max_seq)
    elif isinstance(req, SyncRef):
        out.dataset_requests.append((device_id, req))
    elif isinstance(req, CreditAsk):
        out.credit_asks.append((device_id, req.want))
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
        detail = f"{req.type} is not a device request"
        dead(session, out, now, msg.topic, device_id, "unexpected", detail, msg.payload)


def _ring_for(devices: DeviceRegistry, data: bytes) -> KeyRing:
    """A key ring holding the key the message names (if registered), for ``open_signed``."""
    try:
        kid = parse_json(data, "request", MAX_CONTROL_BYTES).get("k")
    except (EnvelopeError, AttributeError):
        return KeyRing()
    key = devices.lookup(kid) if isinstance(kid, str) else None
    return KeyRing([key.verifier] if key else [])
