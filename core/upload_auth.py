"""Per-device signatures on video upload requests, shared by the device (signs) and the server (verifies).

The device signs ``METHOD \\n PATH \\n TIMESTAMP \\n BODY_CLAIM \\n DEVICE_ID`` with its Ed25519 key and sends
four headers. The server checks the signature against the device's registered key and refuses timestamps more
than ``MAX_SKEW_SECONDS`` away from its clock.

- Small requests (announce, status): ``BODY_CLAIM`` is the SHA-256 of the body. The server checks the signature
  from the headers alone (``verify_request_headers``) before it reads any of the body, then compares the body
  with the signed hash (``check_body``); a mismatch (``BodyCorrupted``) means damage in transit: send again.
- Segment data (``sign_append``/``verify_append``): ``BODY_CLAIM`` is ``prefix:OFFSET:BEFORE:AFTER``, the
  SHA-256 of the segment's bytes ``[0, OFFSET)`` and of ``[0, OFFSET + len(body))``. The server keeps the
  running SHA-256 of what it stored anyway, so it checks the body with the one hash pass that also builds
  the end-to-end segment hash; ``BEFORE`` lets it tell a damaged body from a prefix that differs from the
  device's. The claim binds the offset, the body and everything stored before it.

Every upload request is idempotent (PUT of a byte range at an explicit offset), so a replay inside the
window changes nothing. Pure: the caller passes the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.ascii_digits import parse_digits
from core.manifest import DEVICE_ID_PATTERN

HEADER_DEVICE = "X-Patrol-Device"
HEADER_TIMESTAMP = "X-Patrol-Timestamp"
HEADER_CONTENT_SHA256 = "X-Patrol-Content-SHA256"
HEADER_SIGNATURE = "X-Patrol-Signature"
HEADER_UPLOAD_OFFSET = "Upload-Offset"
HEADER_PREFIX_BEFORE = "X-Patrol-Prefix-SHA256-Before"
HEADER_PREFIX_AFTER = "X-Patrol-Prefix-SHA256-After"
HEADER_ENTRY = (
    "X-Patrol-Manifest-Entry"  # base64 of the segment's manifest entry: announce and append at once
)
MAX_ENTRY_BYTES = 16 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_SKEW_SECONDS = 300
MAX_TIMESTAMP_DIGITS = 12


class UploadAuthError(ValueError):
    """The request is not signed correctly by the device it names; the message says what is wrong."""


class MalformedHeader(UploadAuthError):
    """A header is there but not in its form (digits, hex, base64): a bad request rather than a failed
    authentication; the message names the header."""


class BodyCorrupted(UploadAuthError):
    """Correctly signed, but the body differs from the SHA-256 the device signed: damaged in transit, resend."""


@dataclass(frozen=True)
class AppendClaim:
    """What a verified data request says: the device, the offset, and the prefix hashes before and after."""

    device_id: str
    offset: int
    sha256_before: str
    sha256_after: str
    entry: bytes | None = None  # the manifest entry sent along, which the signature also covers


def append_claim_text(offset: int, sha256_before: str, sha256_after: str, entry: bytes | None = None) -> str:
    text = f"prefix:{offset}:{sha256_before}:{sha256_after}"
    return text if entry is None else f"{text}:entry:{hashlib.sha256(entry).hexdigest()}"


def signed_message(method: str, path: str, timestamp: int, body_sha256: str, device_id: str) -> bytes:
    return "\n".join([method.upper(), path, str(timestamp), body_sha256, device_id]).encode("utf-8")


def sign_request(
    private_key: Ed25519PrivateKey, device_id: str, method: str, path: str, body: bytes, now: datetime
) -> dict[str, str]:
    """Headers that authenticate one request (``path`` is the URL path without query)."""
    timestamp = int(now.timestamp())
    digest = hashlib.sha256(body).hexdigest()
    signature = private_key.sign(signed_message(method, path, timestamp, digest, device_id))
    return {
        HEADER_DEVICE: device_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_CONTENT_SHA256: digest,
        HEADER_SIGNATURE: base64.b64encode(signature).decode("ascii"),
    }


def sign_append(
    private_key: Ed25519PrivateKey,
    device_id: str,
    path: str,
    offset: int,
    sha256_before: str,
    sha256_after: str,
    now: datetime,
    entry: bytes | None = None,
) -> dict[str, str]:
    """Headers that authenticate one segment-data PUT: bytes at ``offset`` taking the prefix hash from
    ``sha256_before`` (of bytes ``[0, offset)``) to ``sha256_after`` (of bytes ``[0, offset + len(body))``).
    With ``entry`` (the segment's manifest entry JSON) the request also announces the segment."""
    timestamp = int(now.timestamp())
    claim = append_claim_text(offset, sha256_before, sha256_after, entry)
    signature = private_key.sign(signed_message("PUT", path, timestamp, claim, device_id))
    headers = {
        HEADER_DEVICE: device_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_UPLOAD_OFFSET: str(offset),
        HEADER_PREFIX_BEFORE: sha256_before,
        HEADER_PREFIX_AFTER: sha256_after,
        HEADER_SIGNATURE: base64.b64encode(signature).decode("ascii"),
    }
    if entry is not None:
        headers[HEADER_ENTRY] = base64.b64encode(entry).decode("ascii")
    return headers


def claimed_device(headers: Mapping[str, str]) -> str:
    """The device a request claims to come from (not yet verified)."""
    device_id = headers.get(HEADER_DEVICE) or headers.get(HEADER_DEVICE.lower()) or ""
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise UploadAuthError(f"{HEADER_DEVICE}: missing or malformed")
    return device_id


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise UploadAuthError(f"{name}: missing")
    return value


def _verify_signature(
    public_key: Ed25519PublicKey,
    headers: Mapping[str, str],
    method: str,
    path: str,
    body_claim: str,
    now: datetime,
    max_skew_seconds: int,
) -> str:
    device_id = claimed_device(headers)
    timestamp = parse_digits(_header(headers, HEADER_TIMESTAMP), MAX_TIMESTAMP_DIGITS)
    if timestamp is None:
        raise MalformedHeader(
            f"{HEADER_TIMESTAMP}: expected Unix time in seconds, 1-{MAX_TIMESTAMP_DIGITS} ASCII digits"
        )
    if abs(now.timestamp() - timestamp) > max_skew_seconds:
        raise UploadAuthError(f"{HEADER_TIMESTAMP}: more than {max_skew_seconds} s from server time")
    try:
        signature = base64.b64decode(_header(headers, HEADER_SIGNATURE), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedHeader(f"{HEADER_SIGNATURE}: not base64") from exc
    try:
        public_key.verify(signature, signed_message(method, path, timestamp, body_claim, device_id))
    except InvalidSignature as exc:
        raise UploadAuthError(f"{HEADER_SIGNATURE}: does not verify for device {device_id}") from exc
    return device_id


def verify_request(
    public_key: Ed25519PublicKey,
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now: datetime,
    max_skew_seconds: int = MAX_SKEW_SECONDS,
) -> str:
    """Return the authenticated device id, or raise ``UploadAuthError``."""
    device_id, declared = verify_request_headers(public_key, headers, method, path, now, max_skew_seconds)
    check_body(declared, body)
    return device_id


def verify_request_headers(
    public_key: Ed25519PublicKey,
    headers: Mapping[str, str],
    method: str,
    path: str,
    now: datetime,
    max_skew_seconds: int = MAX_SKEW_SECONDS,
) -> tuple[str, str]:
    """Check a small request's signature from its headers alone, before its body is read: returns the
    authenticated device id and the body's signed SHA-256 (to give ``check_body`` once the body is in)."""
    declared = _header(headers, HEADER_CONTENT_SHA256)
    if not _HEX64.fullmatch(declared):
        raise MalformedHeader(f"{HEADER_CONTENT_SHA256}: expected 64 lowercase hex digits")
    device_id = _verify_signature(public_key, headers, method, path, declared, now, max_skew_seconds)
    return device_id, declared


def check_body(declared_sha256: str, body: bytes) -> None:
    """``BodyCorrupted`` unless ``body`` has the SHA-256 the device signed."""
    if hashlib.sha256(body).hexdigest() != declared_sha256:
        raise BodyCorrupted(f"{HEADER_CONTENT_SHA256}: the body does not match the signed hash")


def verify_append(
    public_key: Ed25519PublicKey,
    headers: Mapping[str, str],
    path: str,
    offset: int,
    now: datetime,
    max_skew_seconds: int = MAX_SKEW_SECONDS,
) -> AppendClaim:
    """Check the signature of a segment-data PUT before its body is read; the caller checks the body by
    comparing its running prefix hash with ``sha256_before`` and ``sha256_after``."""
    before = _header(headers, HEADER_PREFIX_BEFORE)
    after = _header(headers, HEADER_PREFIX_AFTER)
    for name, value in ((HEADER_PREFIX_BEFORE, before), (HEADER_PREFIX_AFTER, after)):
        if not _HEX64.fullmatch(value):
            raise MalformedHeader(f"{name}: expected 64 lowercase hex digits")
    entry: bytes | None = None
    encoded = headers.get(HEADER_ENTRY) or headers.get(HEADER_ENTRY.lower())
    if encoded:
        if len(encoded) > MAX_ENTRY_BYTES * 4 // 3 + 4:
            raise MalformedHeader(f"{HEADER_ENTRY}: longer than {MAX_ENTRY_BYTES} bytes")
        try:
            entry = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedHeader(f"{HEADER_ENTRY}: not base64") from exc
    claim = append_claim_text(offset, before, after, entry)
    device_id = _verify_signature(public_key, headers, "PUT", path, claim, now, max_skew_seconds)
    return AppendClaim(device_id, offset, before, after, entry)
