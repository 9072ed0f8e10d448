"""Signed control messages of the sync link: server acks and resend requests, device hello and data requests.

Each is a small pydantic model, serialised once to canonical JSON, signed under its domain and sent as
``{"v":1,"p":b64(payload),"s":b64(sig),"k":kid}``. ``open_signed`` checks size, shape, version and signature
before anything is parsed, and ``parse_control`` rejects unknown message types with a ``EnvelopeError``.

Topics (``{d}`` = device id): records go up on ``pd/v1/{d}/up/{stream}``; ``hello``/``sync_ref``/
``ref_applied``/``credit_ask`` on ``pd/v1/{d}/req``; acks come down on ``pd/v1/{d}/ack``; ``resend`` and
``credit`` on ``pd/v1/{d}/down/ctl``; datasets on ``pd/v1/{d}/down/ref``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from core.sync.envelope import MAX_JSON_DEPTH, WIRE_VERSION, EnvelopeError, json_depth_within, parse_json
from core.sync.signing import KeyRing, Signer, b64d, b64e

MAX_CONTROL_BYTES = 4 * 1024 * 1024
TOPIC_ROOT = "pd/v1"

AckStatus = Literal["ok", "dup", "conflict", "rejected"]


def up_topic(device_id: str, stream: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/up/{stream}"


def req_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/req"


def ack_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/ack"


def ctl_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/down/ctl"


def ref_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/down/ref"


def topic_device(topic: str) -> tuple[str, str] | None:
    """``(device_id, kind)`` for ``pd/v1/{d}/up/...`` (kind ``up``) or ``pd/v1/{d}/req`` (kind ``req``)."""
    parts = topic.split("/")
    if len(parts) >= 4 and parts[0] == "pd" and parts[1] == "v1" and parts[3] in ("up", "req"):
        return parts[2], parts[3]
    return None


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AckItem(_Msg):
    epoch: str
    seq: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    status: AckStatus
    reason: str | None = None


class AckEntry(NamedTuple):
    """One ack as the server builds it from values it already checked: the wire shape of ``AckItem`` without
    a model per record (the server acks thousands per second; the device still validates what it receives)."""

    epoch: str
    seq: int
    sha256: str
    status: AckStatus
    reason: str | None = None


def ack_body(dev: str, ts: str, entries: list[AckEntry]) -> dict[str, Any]:
    """The ``Ack`` message for ``entries`` as a plain dict, ready for ``seal``."""
    return {
        "type": "ack",
        "dev": dev,
        "ts": ts,
        "acks": [
            {"epoch": e.epoch, "seq": e.seq, "sha256": e.sha256, "status": e.status, "reason": e.reason}
            for e in entries
        ],
    }


_ACK_KEYS = frozenset({"type", "dev", "ts", "acks"})
_ACK_ITEM_KEYS = frozenset({"epoch", "seq", "sha256", "status", "reason"})
_ACK_STATUSES = frozenset({"ok", "dup", "conflict", "rejected"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_ack(payload: bytes) -> tuple[str, list[AckEntry]]:
    """A verified ``ack`` payload → ``(device id, entries)``, by the same rules as the ``Ack`` model
    (exact keys and JSON types, seq >= 1, sha256 hex, a known status) checked by hand: an ack carries up
    to 500 entries and the model costs several µs each. ``EnvelopeError`` names the first bad field."""
    obj = parse_json(payload, "ack", MAX_CONTROL_BYTES)
    if type(obj) is not dict or obj.keys() != _ACK_KEYS or obj["type"] != "ack":
        raise EnvelopeError("malformed", "not an ack message (keys type, dev, ts, acks)")
    dev, ts, items = obj["dev"], obj["ts"], obj["acks"]
    if type(dev) is not str or type(ts) is not str or type(items) is not list:
        raise EnvelopeError("malformed", "ack dev and ts must be strings and acks a list")
    entries: list[AckEntry] = []
    for i, item in enumerate(items):
        if type(item) is not dict or item.keys() != _ACK_ITEM_KEYS:
            raise EnvelopeError("malformed", f"acks.{i}: keys must be epoch, seq, sha256, status, reason")
        epoch, seq, digest, status, reason = (
            item["epoch"], item["seq"], item["sha256"], item["status"], item["reason"]
        )  # fmt: skip
        if type(epoch) is not str or type(seq) is not int or seq < 1:
            raise EnvelopeError("malformed", f"acks.{i}: epoch must be a string and seq an integer >= 1")
        if type(digest) is not str or not _HEX64.fullmatch(digest):
            raise EnvelopeError("malformed", f"acks.{i}.sha256: not a sha256 hex digest")
        if status not in _ACK_STATUSES or (reason is not None and type(reason) is not str):
            raise EnvelopeError("malformed", f"acks.{i}: unknown status or a reason that is not a string")
        entries.append(AckEntry(epoch, seq, digest, status, reason))
    return dev, entries


class Ack(_Msg):
    """Server → device, sent only after the records' COMMIT. Duplicates are acked as ``dup``."""

    type: Literal["ack"] = "ack"
    dev: str
    ts: str
    acks: list[AckItem]


class Resend(_Msg):
    """Server → device: the server misses these seqs of ``epoch`` (inclusive ranges)."""

    type: Literal["resend"] = "resend"
    dev: str
    epoch: str
    ranges: list[tuple[int, int]]
    ts: str


class Hello(_Msg):
    """Device → server on every connect: its epoch and highest seq, so the server sees lost tails."""

    type: Literal["hello"] = "hello"
    dev: str
    epoch: str
    max_seq: int = Field(ge=0)
    ts: str


class HeldChunks(_Msg):
    """Chunks of one dataset version a device already holds (verified, waiting for the rest)."""

    version: int = Field(ge=1)
    chunks: list[int] = Field(max_length=10_000)


class SyncRef(_Msg):
    """Device → server: the dataset versions it holds; the server answers with newer ones.

    ``partial``: chunks of a newer version it received before its link dropped; the server then sends only
    the other chunks of that version (send it to a server that knows the field: servers upgrade first)."""

    type: Literal["sync_ref"] = "sync_ref"
    dev: str
    have: dict[str, int]
    partial: dict[str, HeldChunks] = Field(default_factory=dict)


class RefApplied(_Msg):
    """Device → server: a dataset version is now in use."""

    type: Literal["ref_applied"] = "ref_applied"
    dev: str
    dataset: str
    version: int


MAX_CREDIT_RECORDS = 100_000  # the most records one ask or one grant may name


class CreditAsk(_Msg):
    """Device → server: it has ``want`` records to send (at least; ``want`` is capped at its window) and no
    credit left. The server answers with a ``Credit``: a grant now, or 0 (queued: a grant follows)."""

    type: Literal["credit_ask"] = "credit_ask"
    dev: str
    want: int = Field(ge=1, le=MAX_CREDIT_RECORDS)


class Credit(_Msg):
    """Server → device: it may publish ``records`` more records within ``valid_s`` seconds of receiving this
    (0 = none yet: its ask is queued and a grant will follow). Admission keeps the fleet's backlog in the
    devices' outboxes instead of the broker's and the ingest's queues (``server.ingest.admission``)."""

    type: Literal["credit"] = "credit"
    dev: str
    records: int = Field(ge=0, le=MAX_CREDIT_RECORDS)
    valid_s: float = Field(gt=0, le=3600)
    ts: str


ControlMessage = Annotated[
    Ack | Resend | Hello | SyncRef | RefApplied | CreditAsk | Credit, Field(discriminator="type")
]
_CONTROL = TypeAdapter(ControlMessage)


def seal(signer: Signer, domain: bytes, obj: dict[str, Any] | BaseModel) -> bytes:
    """Serialise ``obj`` once, sign it under ``domain`` and wrap it for the wire."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    # the signature covers these exact bytes, so no other encoder ever has to reproduce them: orjson's
    # compact key-sorted form (strict: no NaN, 64-bit integers) is ~10x faster than json for a 500-entry ack
    payload = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    sig = signer.sign(domain, payload)
    return orjson.dumps({"k": signer.kid, "p": b64e(payload), "s": b64e(sig), "v": WIRE_VERSION})


def open_signed(data: bytes, keys: KeyRing, domain: bytes) -> tuple[bytes, str]:
    """Check the wrapper and the signature; return ``(payload bytes, kid)``. Raises ``EnvelopeError``
    (malformed, oversized, unknown_version) or ``BadSignature``."""
    obj = parse_json(data, "message", MAX_CONTROL_BYTES)
    if not isinstance(obj, dict) or set(obj) != {"v", "p", "s", "k"}:
        raise EnvelopeError("malformed", "signed message must have exactly 'v', 'p', 's', 'k'")
    if obj["v"] != WIRE_VERSION:
        raise EnvelopeError("unknown_version", f"wire version {obj['v']!r} unknown")
    if not isinstance(obj["k"], str):
        raise EnvelopeError("malformed", "'k' must be a key id string")
    try:
        payload = b64d(obj["p"], "payload")
        sig = b64d(obj["s"], "signature")
    except ValueError as exc:
        raise EnvelopeError("malformed", str(exc)) from None
    keys.verify(obj["k"], domain, payload, sig)
    return payload, obj["k"]


def parse_control(payload: bytes) -> Ack | Resend | Hello | SyncRef | RefApplied | CreditAsk | Credit:
    """Parse a verified control payload; ``EnvelopeError`` for unknown types or bad fields."""
    if len(payload) > MAX_CONTROL_BYTES or not json_depth_within(payload, MAX_JSON_DEPTH):
        raise EnvelopeError(
            "malformed", f"control message over {MAX_CONTROL_BYTES} bytes or too deeply nested"
        )
    try:
        return _CONTROL.validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EnvelopeError("malformed", f"control message {where}: {first['msg']}") from None
