"""The sync envelope: the exact bytes a device signs for one record, and the MQTT message carrying several.

A record's *payload* is made once on the device, stored verbatim in the outbox and on the server, and never
re-encoded, so the signature always covers the same bytes::

    {"body":{...},"dev":"PD-1","epoch":"5c1e…","id":"<uuid>","prev":"<sha256 hex of previous payload>",
     "refs":{"tariffs":7},"seq":4711,"stream":"payment","sv":1,"ts":"2026-11-23T19:00:00+00:00"}

An up-message (topic ``pd/v1/{dev}/up/{stream}``) carries several payloads under one signature, in binary
framing (wire version 3)::

    b"PDS\\x03" | u8 len(kid) | kid (ASCII) | 64-byte Ed25519 signature | u16 count | count × (u32 len | payload)

big-endian; nothing may follow the last payload. The signature is over ``b"pd-batch-v1\\x00" + manifest``, where
the *manifest* is the concatenation of the raw sha256 digests of the payloads, in order. A record is then proven
by its payload, the manifest holding its digest, and the one signature; the server keeps all three
(``sync_inbox`` + ``sync_batch``). Wire versions 1 and 2 (JSON, base64) are not decoded: no device sends them.

``decode_up`` and ``parse_payload`` reject anything malformed, oversized or of an unknown version with an
``EnvelopeError`` whose ``reason`` is a short code; nothing is half-read. Every JSON this contract reads goes
through ``parse_json``: its size and nesting depth are bounded before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson

from core.sync.signing import DOMAIN_BATCH, KeyRing, Signer

WIRE_VERSION = 1  # of the JSON control messages and datasets (``core.sync.control``, ``core.sync.datasets``)
BINARY_WIRE_VERSION = 3
BINARY_MAGIC = b"PDS\x03"
_SIG_BYTES = 64
MAX_RECORD_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 512 * 1024
MAX_RECORDS_PER_MESSAGE = 500
MAX_JSON_DEPTH = 16  # no message of the contract nests deeper than 5
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class EnvelopeError(ValueError):
    """A message or record that is rejected whole; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def valid_device_id(device_id: str) -> bool:
    """Device ids are one MQTT topic level: letters, digits, ``_ . -``, at most 64 characters. The whole
    string must match (``$`` alone would let a trailing line break through)."""
    return bool(_DEVICE_ID.fullmatch(device_id))


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: how payloads are made (once) on the device."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')


def json_depth_within(data: bytes, limit: int) -> bool:
    """False if ``data`` nests arrays and objects more than ``limit`` deep (True guarantees at most
    ``2 * limit``), found at C speed without parsing: escaped backslashes and quotes are dropped, everything
    but brackets and quotes deleted, strings cut out (two adjacent quotes first: nothing lies between them),
    then the innermost bracket pairs peeled off, one or two levels per pass. Unbalanced brackets count as too
    deep (such JSON is malformed anyway)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return True
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    for _ in range(limit):
        peeled = skeleton.replace(b"[]", b"").replace(b"{}", b"")
        if not peeled:
            return True
        if peeled == skeleton:
            return False
        skeleton = peeled
    return False


def parse_json(data: bytes, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON (RFC 8259, UTF-8, no NaN) of at most ``max_bytes`` bytes nested at most ``max_depth``
    deep (see ``json_depth_within``), both checked before parsing; ``EnvelopeError`` naming ``what`` and
    the reason otherwise. Never ``RecursionError``, whatever the input."""
    if len(data) > max_bytes:
        raise EnvelopeError("oversized", f"{what} is {len(data)} bytes, limit {max_bytes}")
    if not json_depth_within(data, max_depth):
        raise EnvelopeError("malformed", f"{what} nests deeper than {max_depth} levels")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("malformed", f"{what} is not UTF-8 JSON: {exc}") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(slots=True)
class RecordPayload:
    """The parsed header and body of one signed record payload."""

    dev: str
    epoch: str
    seq: int
    id: str
    stream: str
    sv: int
    ts: str
    prev: str
    refs: dict[str, int]
    body: dict[str, Any]


def make_payload(
    *,
    dev: str,
    epoch: str,
    seq: int,
    record_id: str,
    stream: str,
    sv: int,
    ts: datetime,
    prev: str,
    refs: dict[str, int],
    body: dict[str, Any],
) -> bytes:
    """Build the exact bytes to sign for one record."""
    if ts.tzinfo is None:
        raise ValueError("record time must be timezone-aware")
    data = canonical_json(
        {
            "dev": dev,
            "epoch": epoch,
            "seq": seq,
            "id": record_id,
            "stream": stream,
            "sv": sv,
            "ts": ts.isoformat(),
            "prev": prev,
            "refs": refs,
            "body": body,
        }
    )
    if len(data) > MAX_RECORD_BYTES:
        raise EnvelopeError("oversized", f"record payload is {len(data)} bytes, limit {MAX_RECORD_BYTES}")
    return data


_PAYLOAD_FIELDS = {
    "dev": str,
    "epoch": str,
    "seq": int,
    "id": str,
    "stream": str,
    "sv": int,
    "ts": str,
    "prev": str,
    "refs": dict,
    "body": dict,
}


_FIELD_NAMES = frozenset(_PAYLOAD_FIELDS)
_FIELD_TYPES = tuple(_PAYLOAD_FIELDS.items())


def parse_payload(payload: bytes) -> RecordPayload:
    """Parse signed record bytes (after the signature was checked); ``EnvelopeError`` if malformed."""
    obj = parse_json(payload, "record payload", MAX_RECORD_BYTES)
    if type(obj) is not dict:
        raise EnvelopeError("malformed", "record payload is not a JSON object")
    if obj.keys() != _FIELD_NAMES:
        missing = sorted(_FIELD_NAMES - set(obj))
        extra = sorted(set(obj) - _FIELD_NAMES)
        raise EnvelopeError("malformed", f"record payload fields: missing {missing}, unexpected {extra}")
    for name, kind in _FIELD_TYPES:
        value = obj[name]
        if type(value) is not kind:  # exact JSON types: no bool for int, no subclass can come from json
            raise EnvelopeError("malformed", f"record field {name!r} must be {kind.__name__}")
    if not valid_device_id(obj["dev"]):
        raise EnvelopeError("malformed", f"device id {obj['dev'][:80]!r} is not valid")
    if obj["seq"] < 1 or obj["sv"] < 1:
        raise EnvelopeError("malformed", "seq and sv must be positive")
    if obj["prev"] and not _HEX64.match(obj["prev"]):
        raise EnvelopeError("malformed", "prev must be a sha256 hex digest or empty")
    if not all(type(v) is int for v in obj["refs"].values()):  # JSON object keys are always strings
        raise EnvelopeError("malformed", "refs must map dataset names to integer versions")
    return RecordPayload(**obj)


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """One record as the server keeps it: the payload bytes, the signature of its batch and the key id."""

    payload: bytes
    sig: bytes
    kid: str

    @property
    def sha256(self) -> str:
        return sha256_hex(self.payload)


def batch_manifest(payloads: list[bytes]) -> bytes:
    """What an up-message's signature covers: the raw sha256 digests of its payloads, in order."""
    return b"".join(hashlib.sha256(p).digest() for p in payloads)


@dataclass(frozen=True)
class SignedBatch:
    """Several record payloads under one signature over their manifest."""

    payloads: list[bytes]
    sig: bytes
    kid: str

    @cached_property
    def digests(self) -> list[bytes]:
        """Raw sha256 of each payload, in order (computed once)."""
        return [hashlib.sha256(p).digest() for p in self.payloads]

    @cached_property
    def manifest(self) -> bytes:
        return b"".join(self.digests)

    @cached_property
    def batch_id(self) -> str:
        """Stable id of the batch: the sha256 hex of its manifest (a resend of the same batch has the same)."""
        return sha256_hex(self.manifest)

    def verify(self, keys: KeyRing) -> None:
        keys.verify(self.kid, DOMAIN_BATCH, self.manifest, self.sig)


def encode_batch_message(signer: Signer, payloads: list[bytes]) -> bytes:
    """Several record payloads in one MQTT message with one signature (wire v3)."""
    if not payloads or len(payloads) > MAX_RECORDS_PER_MESSAGE:
        raise ValueError(f"an up-message carries 1..{MAX_RECORDS_PER_MESSAGE} records, got {len(payloads)}")
    return frame_batch(signer.kid, signer.sign(DOMAIN_BATCH, batch_manifest(payloads)), payloads)


def frame_batch(kid: str, sig: bytes, payloads: list[bytes]) -> bytes:
    """The v3 binary framing of an already signed batch (see the module docstring)."""
    raw_kid = kid.encode("ascii")
    parts = [BINARY_MAGIC, bytes((len(raw_kid),)), raw_kid, sig, len(payloads).to_bytes(2, "big")]
    for p in payloads:
        parts.append(len(p).to_bytes(4, "big"))
        parts.append(p)
    return b"".join(parts)


def message_bytes(kid: str, payload_sizes: list[int]) -> int:
    """The size of the v3 message that would carry payloads of these sizes (to stay under the limits)."""
    return len(BINARY_MAGIC) + 1 + len(kid) + _SIG_BYTES + 2 + sum(4 + n for n in payload_sizes)


def plan_messages(kid: str, sizes: list[int], max_records: int) -> list[tuple[int, int]]:
    """Split payloads of these ``sizes`` (in order) into ``[start, end)`` runs, one v3 message each: at most
    ``max_records`` (and ``MAX_RECORDS_PER_MESSAGE``) records and ``MAX_MESSAGE_BYTES`` bytes per message,
    which the server refuses above. A record is never split; one alone always fits (``MAX_RECORD_BYTES``)."""
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    cap = min(max_records, MAX_RECORDS_PER_MESSAGE)
    head = message_bytes(kid, [])
    runs: list[tuple[int, int]] = []
    start, used = 0, head
    for i, n in enumerate(sizes):
        if n > MAX_RECORD_BYTES:
            raise ValueError(f"payload {i} is {n} bytes, limit {MAX_RECORD_BYTES}")
        if i > start and (i - start >= cap or used + 4 + n > MAX_MESSAGE_BYTES):
            runs.append((start, i))
            start, used = i, head
        used += 4 + n
    if start < len(sizes):
        runs.append((start, len(sizes)))
    return runs


def _decode_binary(data: bytes) -> SignedBatch:
    """Split a v3 message; ``EnvelopeError`` naming the first thing wrong (nothing is half-read)."""
    size = len(data)
    pos = len(BINARY_MAGIC)
    if size < pos + 1:
        raise EnvelopeError("malformed", "v3 message truncated before its key id")
    klen = data[pos]
    kid_raw = data[pos + 1 : pos + 1 + klen]
    pos += 1 + klen
    if not kid_raw or len(kid_raw) != klen or not kid_raw.isascii():
        raise EnvelopeError("malformed", "v3 key id missing, truncated or not ASCII")
    sig = data[pos : pos + _SIG_BYTES]
    if len(sig) != _SIG_BYTES or size < pos + _SIG_BYTES + 2:
        raise EnvelopeError("malformed", "v3 message truncated in its signature or record count")
    pos += _SIG_BYTES
    count = int.from_bytes(data[pos : pos + 2], "big")
    pos += 2
    if not 1 <= count <= MAX_RECORDS_PER_MESSAGE:
        raise EnvelopeError(
            "malformed", f"v3 message carries {count} records, allowed 1..{MAX_RECORDS_PER_MESSAGE}"
        )
    payloads: list[bytes] = []
    for i in range(count):
        if pos + 4 > size:
            raise EnvelopeError("malformed", f"v3 message truncated before the length of record {i}")
        n = int.from_bytes(data[pos : pos + 4], "big")
        if n > MAX_RECORD_BYTES:
            raise EnvelopeError("oversized", f"record {i} is {n} bytes, limit {MAX_RECORD_BYTES}")
        end = pos + 4 + n
        if end > size:
            raise EnvelopeError("malformed", f"v3 message truncated inside record {i}")
        payloads.append(data[pos + 4 : end])
        pos = end
    if pos != size:
        raise EnvelopeError("malformed", f"{size - pos} unexpected bytes after the last record")
    return SignedBatch(payloads, sig, kid_raw.decode("ascii"))


def decode_up(data: bytes) -> SignedBatch:
    """Split an up-message (signature not yet checked); ``EnvelopeError`` if bad or of another wire version."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise EnvelopeError("oversized", f"message is {len(data)} bytes, limit {MAX_MESSAGE_BYTES}")
    if data[:4] == BINARY_MAGIC:
        return _decode_binary(data)
    if data[:3] == BINARY_MAGIC[:3]:
        version = data[3:4].hex()
        raise EnvelopeError("unknown_version", f"binary wire version {version} unknown; this server speaks 3")
    obj = parse_json(data, "message", MAX_MESSAGE_BYTES)  # bounded: "malformed" for what is not even JSON
    if isinstance(obj, dict) and "v" in obj:
        version = repr(obj["v"])[:40]
        raise EnvelopeError("unknown_version", f"wire version {version} unknown; this server speaks 3")
    raise EnvelopeError("malformed", "not an up-message: neither wire v3 nor a JSON object with a version")
