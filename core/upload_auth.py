"""Per-device signatures on video upload requests, shared by the device (signs) and the server (verifies).

The device signs ``METHOD \\n PATH \\n TIMESTAMP \\n BODY_SHA256 \\n DEVICE_ID`` with its Ed25519 key and sends
four headers. The server checks the signature against the device's registered key, refuses timestamps more
than ``MAX_SKEW_SECONDS`` away from its clock, and then compares the body with the signed hash: a mismatch
there (``BodyCorrupted``) means damage in transit, which the device cures by sending again. Every upload request is
idempotent (PUT of a byte range at an explicit offset), so a replay inside the window changes nothing.
Pure: the caller passes the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.manifest import DEVICE_ID_PATTERN

HEADER_DEVICE = "X-Patrol-Device"
HEADER_TIMESTAMP = "X-Patrol-Timestamp"
HEADER_CONTENT_SHA256 = "X-Patrol-Content-SHA256"
HEADER_SIGNATURE = "X-Patrol-Signature"
MAX_SKEW_SECONDS = 300


class UploadAuthError(ValueError):
    """The request is not signed correctly by the device it names; the message says what is wrong."""


class BodyCorrupted(UploadAuthError):
    """Correctly signed, but the body differs from the SHA-256 the device signed: damaged in transit, resend."""


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


def claimed_device(headers: Mapping[str, str]) -> str:
    """The device a request claims to come from (not yet verified)."""
    device_id = headers.get(HEADER_DEVICE) or headers.get(HEADER_DEVICE.lower()) or ""
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise UploadAuthError(f"{HEADER_DEVICE}: missing or malformed")
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

    def header(name: str) -> str:
        value = headers.get(name) or headers.get(name.lower())
        if not value:
            raise UploadAuthError(f"{name}: missing")
        return value

    device_id = claimed_device(headers)
    try:
        timestamp = int(header(HEADER_TIMESTAMP))
    except ValueError as exc:
        raise UploadAuthError(f"{HEADER_TIMESTAMP}: not an integer") from exc
    if abs(now.timestamp() - timestamp) > max_skew_seconds:
        raise UploadAuthError(f"{HEADER_TIMESTAMP}: more than {max_skew_seconds} s from server time")
    declared = header(HEADER_CONTENT_SHA256)
    try:
        signature = base64.b64decode(header(HEADER_SIGNATURE), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadAuthError(f"{HEADER_SIGNATURE}: not base64") from exc
    try:
        public_key.verify(signature, signed_message(method, path, timestamp, declared, device_id))
    except InvalidSignature as exc:
        raise UploadAuthError(f"{HEADER_SIGNATURE}: does not verify for device {device_id}") from exc
    if hashlib.sha256(body).hexdigest() != declared:
        raise BodyCorrupted(f"{HEADER_CONTENT_SHA256}: the body does not match the signed hash")
    return device_id
