"""Hash-chained, Ed25519-signed manifest of recorded video segments, shared by the device and the server.

Each closed segment gets one ``ManifestEntry``: its sequence number, UTC start and end, frame count, size,
SHA-256 and the hash of the previous entry. ``canonical_bytes`` is the one byte form that is hashed and
signed (sorted-key compact JSON without the signature), so device and server agree byte for byte.
An entry may also carry ``gps`` (``SegmentGps``: position at the first and last frame, seconds with a fix);
it is signed with the rest, and an entry without it has exactly the bytes it always had, so older chains
still verify.
The first entry of a device links to ``GENESIS_HASH``. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS_HASH = "0" * 64
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KID = re.compile(r"^[A-Za-z0-9._:-]{0,128}$")
MAX_SEGMENT_BYTES = 2**40
MAX_SEQ = 2**62
MAX_FRAMES = 2**40
MAX_OVERLAP_SECONDS = 1.0  # tolerated clock jitter between one segment's end and the next one's start
_FIELDS = (
    "device_id",
    "seq",
    "start_utc",
    "end_utc",
    "frames",
    "size",
    "sha256",
    "prev_hash",
    "repaired",
    "kid",
)


class ManifestError(ValueError):
    """A manifest entry is malformed, forged or does not link to its predecessor; the message says which."""


_GPS_FIELDS = ("start_lat", "start_lon", "end_lat", "end_lon", "fix_seconds", "seconds")


@dataclass(frozen=True)
class SegmentGps:
    """GPS of one segment: position at its first and last frame (both ``None`` = no fix at that moment) and
    how many of its ``seconds`` (started seconds of video) had a fix on at least one frame."""

    start_lat: float | None
    start_lon: float | None
    end_lat: float | None
    end_lon: float | None
    fix_seconds: int
    seconds: int

    @property
    def fix_fraction(self) -> float | None:
        return self.fix_seconds / self.seconds if self.seconds else None


def _gps_coordinate(data: Mapping[str, Any], name: str, limit: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if type(value) is not float and type(value) is not int:
        raise ManifestError(f"gps.{name}: expected a number or null, got {type(value).__name__}")
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ManifestError(f"gps.{name}: {value} is outside -{limit:g}..{limit:g}")
    return float(value)


def parse_gps(data: Any) -> SegmentGps | None:
    """Validate an entry's ``gps`` object (``None`` stays ``None``); errors name the field."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ManifestError(f"gps: expected an object or null, got {type(data).__name__}")
    if set(data) != set(_GPS_FIELDS):
        raise ManifestError(f"gps: expected exactly the fields {sorted(_GPS_FIELDS)}, got {sorted(data)}")
    start = (_gps_coordinate(data, "start_lat", 90), _gps_coordinate(data, "start_lon", 180))
    end = (_gps_coordinate(data, "end_lat", 90), _gps_coordinate(data, "end_lon", 180))
    for name, (lat, lon) in (("start", start), ("end", end)):
        if (lat is None) != (lon is None):
            raise ManifestError(f"gps.{name}: latitude and longitude must both be given or both be null")
    seconds = _require_int(data, "seconds", 0, MAX_FRAMES)
    fix_seconds = _require_int(data, "fix_seconds", 0, seconds)
    return SegmentGps(start[0], start[1], end[0], end[1], fix_seconds, seconds)


def format_utc(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, the only time form used in entries."""
    if moment.tzinfo is None:
        raise ManifestError("time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_utc(text: str, field: str = "time") -> datetime:
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text, re.ASCII):
        raise ManifestError(f"{field}: expected UTC time like 2026-03-02T09:00:00.000Z, got {text!r}")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ManifestError(f"{field}: not a valid time: {text!r}") from exc


@dataclass(frozen=True)
class ManifestEntry:
    """One closed segment. ``signature`` is base64 Ed25519 over ``canonical_bytes`` (empty until signed)."""

    device_id: str
    seq: int
    start_utc: str
    end_utc: str
    frames: int
    size: int
    sha256: str
    prev_hash: str
    kid: str = ""
    repaired: bool = False
    signature: str = ""
    gps: SegmentGps | None = None

    @property
    def start(self) -> datetime:
        return parse_utc(self.start_utc, "start_utc")

    @property
    def end(self) -> datetime:
        return parse_utc(self.end_utc, "end_utc")

    def to_dict(self) -> dict[str, Any]:
        """Every field; ``gps`` only when the entry has it (an entry without it reads as it always did)."""
        data = asdict(self)
        if self.gps is None:
            del data["gps"]
        return data


def _require_int(data: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = data.get(name)
    if type(value) is not int:
        raise ManifestError(f"{name}: expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ManifestError(f"{name}: {value} is outside {low}..{high}")
    return value


def _require_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ManifestError(f"{name}: expected a string, got {type(value).__name__}")
    return value


def parse_entry(data: Any) -> ManifestEntry:
    """Validate untrusted JSON data into an entry; every error names the field that is wrong."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"entry: expected an object, got {type(data).__name__}")
    unknown = set(data) - {*_FIELDS, "signature", "gps"}
    if unknown:
        raise ManifestError(f"entry: unknown fields {sorted(unknown)}")
    device_id = _require_str(data, "device_id")
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise ManifestError(f"device_id: {device_id!r} is not 1-64 of [A-Za-z0-9._-] starting alphanumeric")
    seq = _require_int(data, "seq", 1, MAX_SEQ)
    start_utc = _require_str(data, "start_utc")
    end_utc = _require_str(data, "end_utc")
    if parse_utc(end_utc, "end_utc") < parse_utc(start_utc, "start_utc"):
        raise ManifestError("end_utc: before start_utc")
    frames = _require_int(data, "frames", 0, MAX_FRAMES)
    size = _require_int(data, "size", 0, MAX_SEGMENT_BYTES)
    sha = _require_str(data, "sha256")
    if not _HEX64.fullmatch(sha):
        raise ManifestError("sha256: expected 64 lowercase hex digits")
    prev = _require_str(data, "prev_hash")
    if not _HEX64.fullmatch(prev):
        raise ManifestError("prev_hash: expected 64 lowercase hex digits")
    kid = data.get("kid", "")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise ManifestError("kid: expected up to 128 of [A-Za-z0-9._:-]")
    repaired = data.get("repaired", False)
    if not isinstance(repaired, bool):
        raise ManifestError("repaired: expected true or false")
    signature = data.get("signature", "")
    if not isinstance(signature, str) or len(signature) > 200:
        raise ManifestError("signature: expected a base64 string")
    gps = parse_gps(data.get("gps"))
    return ManifestEntry(
        device_id, seq, start_utc, end_utc, frames, size, sha, prev, kid, repaired, signature, gps
    )


def canonical_bytes(entry: ManifestEntry) -> bytes:
    """The exact bytes that are hashed and signed: compact sorted JSON of every field but the signature."""
    body: dict[str, Any] = {name: getattr(entry, name) for name in _FIELDS}
    if entry.gps is not None:
        body["gps"] = asdict(entry.gps)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def entry_hash(entry: ManifestEntry) -> str:
    """The hash the next entry must carry as ``prev_hash``."""
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


def sign_entry(entry: ManifestEntry, private_key: Ed25519PrivateKey) -> ManifestEntry:
    signature = private_key.sign(canonical_bytes(entry))
    return replace(entry, signature=base64.b64encode(signature).decode("ascii"))


def verify_entry(entry: ManifestEntry, public_key: Ed25519PublicKey) -> None:
    """Raise ``ManifestError`` unless the entry carries a valid signature by ``public_key``."""
    try:
        raw = base64.b64decode(entry.signature.encode("ascii"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestError("signature: not valid base64") from exc
    if len(raw) != 64:
        raise ManifestError("signature: missing or not 64 bytes")
    try:
        public_key.verify(raw, canonical_bytes(entry))
    except InvalidSignature as exc:
        raise ManifestError(
            f"signature: does not verify for segment {entry.seq} of {entry.device_id}"
        ) from exc


def check_link(previous: ManifestEntry | None, entry: ManifestEntry) -> None:
    """Raise ``ManifestError`` unless ``entry`` directly follows ``previous`` (None = first entry of a device)."""
    if previous is None:
        if entry.prev_hash != GENESIS_HASH:
            raise ManifestError(f"chain: segment {entry.seq} has no predecessor but prev_hash is not genesis")
        return
    if previous.device_id != entry.device_id:
        raise ManifestError("chain: entries belong to different devices")
    if entry.seq != previous.seq + 1:
        raise ManifestError(f"chain: segment {entry.seq} does not follow segment {previous.seq}")
    if entry.prev_hash != entry_hash(previous):
        raise ManifestError(f"chain: prev_hash of segment {entry.seq} does not match segment {previous.seq}")
    if (previous.end - entry.start).total_seconds() > MAX_OVERLAP_SECONDS:
        raise ManifestError(f"chain: segment {entry.seq} starts before segment {previous.seq} ends")


def check_chain(entries: Iterable[ManifestEntry], public_key: Ed25519PublicKey | None = None) -> int:
    """Check a whole chain from its first entry (which must link to genesis); returns the entry count."""
    previous: ManifestEntry | None = None
    count = 0
    for entry in entries:
        if public_key is not None:
            verify_entry(entry, public_key)
        check_link(previous, entry)
        previous = entry
        count += 1
    return count


def entry_to_json(entry: ManifestEntry) -> str:
    return json.dumps(entry.to_dict(), sort_keys=True, separators=(",", ":"))


def entry_from_json(text: str | bytes) -> ManifestEntry:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"entry: not valid JSON: {exc}") from exc
    except RecursionError as exc:  # a manifest entry is one flat object; "[[[[…" must not reach the caller
        raise ManifestError("entry: JSON nested too deeply") from exc
    return parse_entry(data)
