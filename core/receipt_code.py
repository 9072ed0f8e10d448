"""The compact signed verification code printed as a QR on every receipt and checked by the server's ``/r/<code>``.

A code is ``base64url(body || signature)`` without padding, where ``body`` is the binary claim below and
``signature`` is the device's Ed25519 signature of ``DOMAIN || body``. Pure: no clock, no I/O; the device encodes
with its private key, the server decodes and verifies with the device's registered public key.

Body, version 1 (all integers big-endian):

    u8   version = 1
    u8   len  + device_id   (ASCII, 1..64)
    u8   len  + protocol_no (UTF-8, 1..64 bytes)
    u8   len  + rrn         (ASCII, 0..32)
    u64  amount in minor units
    u16  ISO 4217 numeric currency
    u32  paid_at, seconds since the Unix epoch (UTC)
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.signing import BadSignature, sign, verify

VERSION = 1
DOMAIN = b"patrolkit/receipt-code/v1\x00"
SIGNATURE_LEN = 64
MAX_CODE_CHARS = 400  # far above any valid code (~170 chars); longer input is rejected before decoding
_TAIL = struct.Struct(">QHI")


class ReceiptCodeError(ValueError):
    """A verification code is malformed: the message names the part that is wrong."""


@dataclass(frozen=True, slots=True)
class ReceiptClaim:
    """What a receipt asserts: this device took this amount for this protocol at this time (RRN from the bank)."""

    device_id: str
    protocol_no: str
    rrn: str
    amount_minor: int
    currency_numeric: int
    paid_at: datetime

    def __post_init__(self) -> None:
        _check_text("device_id", self.device_id, 1, 64, ascii_only=True)
        _check_text("protocol_no", self.protocol_no, 1, 64, ascii_only=False)
        _check_text("rrn", self.rrn, 0, 32, ascii_only=True)
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise ReceiptCodeError("amount_minor must be an int")
        if not 0 <= self.amount_minor < 2**64:
            raise ReceiptCodeError(f"amount_minor out of range: {self.amount_minor}")
        if isinstance(self.currency_numeric, bool) or not 0 < self.currency_numeric < 1000:
            raise ReceiptCodeError(
                f"currency_numeric must be an ISO 4217 number, got {self.currency_numeric}"
            )
        if not isinstance(self.paid_at, datetime) or self.paid_at.tzinfo is None:
            raise ReceiptCodeError("paid_at must be an aware datetime")
        seconds = self.paid_at.timestamp()
        if not 0 <= seconds < 2**32:
            raise ReceiptCodeError(f"paid_at out of range: {self.paid_at.isoformat()}")
        if seconds != int(seconds):
            object.__setattr__(self, "paid_at", datetime.fromtimestamp(int(seconds), UTC))


@dataclass(frozen=True, slots=True)
class SignedReceiptCode:
    """A decoded (not yet verified) code: the claim, the exact signed bytes and the signature."""

    claim: ReceiptClaim
    body: bytes
    signature: bytes


def _check_text(name: str, value: object, lo: int, hi: int, ascii_only: bool) -> None:
    if not isinstance(value, str):
        raise ReceiptCodeError(f"{name} must be a str, got {type(value).__name__}")
    raw = value.encode("utf-8")
    if not lo <= len(raw) <= hi:
        raise ReceiptCodeError(f"{name} must be {lo}..{hi} bytes, got {len(raw)}")
    if ascii_only and not all(0x21 <= b < 0x7F for b in raw):
        raise ReceiptCodeError(f"{name} must be printable ASCII without spaces")
    if any(ord(c) < 0x20 for c in value):
        raise ReceiptCodeError(f"{name} contains control characters")


def encode_body(claim: ReceiptClaim) -> bytes:
    """The canonical bytes of a claim (what is signed)."""
    out = bytearray([VERSION])
    for text in (claim.device_id, claim.protocol_no, claim.rrn):
        raw = text.encode("utf-8")
        out.append(len(raw))
        out += raw
    out += _TAIL.pack(claim.amount_minor, claim.currency_numeric, int(claim.paid_at.timestamp()))
    return bytes(out)


def decode_body(body: bytes) -> ReceiptClaim:
    """Parse canonical claim bytes; any deviation (version, lengths, trailing bytes) raises ReceiptCodeError."""
    if not body:
        raise ReceiptCodeError("empty body")
    if body[0] != VERSION:
        raise ReceiptCodeError(f"unsupported version {body[0]}")
    pos = 1
    texts: list[str] = []
    for name in ("device_id", "protocol_no", "rrn"):
        if pos >= len(body):
            raise ReceiptCodeError(f"truncated before {name}")
        n = body[pos]
        pos += 1
        if pos + n > len(body):
            raise ReceiptCodeError(f"truncated inside {name}")
        try:
            texts.append(body[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ReceiptCodeError(f"{name} is not UTF-8") from exc
        pos += n
    if len(body) - pos != _TAIL.size:
        raise ReceiptCodeError(f"expected {_TAIL.size} bytes of amount/currency/time, got {len(body) - pos}")
    amount, cur, seconds = _TAIL.unpack_from(body, pos)
    claim = ReceiptClaim(texts[0], texts[1], texts[2], amount, cur, datetime.fromtimestamp(seconds, UTC))
    if encode_body(claim) != body:
        raise ReceiptCodeError("body is not in canonical form")
    return claim


def encode_receipt_code(claim: ReceiptClaim, private_key: Ed25519PrivateKey) -> str:
    """Sign ``claim`` with the device key and return the URL-safe code."""
    body = encode_body(claim)
    raw = body + sign(private_key, DOMAIN + body)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_receipt_code(code: str) -> SignedReceiptCode:
    """Split a code into claim and signature without verifying it (the caller picks the key by device id)."""
    if not isinstance(code, str):
        raise ReceiptCodeError(f"code must be a str, got {type(code).__name__}")
    if len(code) > MAX_CODE_CHARS:
        raise ReceiptCodeError(f"code too long ({len(code)} > {MAX_CODE_CHARS} characters)")
    if not code or any(c not in _B64URL for c in code):
        raise ReceiptCodeError("code must be non-empty base64url (A-Z a-z 0-9 - _)")
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ReceiptCodeError(f"not base64url: {exc}") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != code:
        raise ReceiptCodeError("code is not canonical base64url")
    if len(raw) <= SIGNATURE_LEN:
        raise ReceiptCodeError("code too short to hold a signature")
    body, signature = raw[:-SIGNATURE_LEN], raw[-SIGNATURE_LEN:]
    return SignedReceiptCode(decode_body(body), body, signature)


def verify_receipt_code(code: str, public_key: Ed25519PublicKey) -> ReceiptClaim:
    """Decode and verify; raises ReceiptCodeError (malformed) or core.signing.BadSignature (forged/altered)."""
    signed = decode_receipt_code(code)
    verify_signed(signed, public_key)
    return signed.claim


def verify_signed(signed: SignedReceiptCode, public_key: Ed25519PublicKey) -> None:
    """Raise BadSignature unless ``signed`` was signed by ``public_key``'s private key."""
    verify(public_key, signed.signature, DOMAIN + signed.body)


def receipt_url(base_url: str, code: str) -> str:
    """The public verification page for ``code`` on the server at ``base_url``."""
    return f"{base_url.rstrip('/')}/r/{code}"


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

__all__ = [
    "BadSignature",
    "ReceiptClaim",
    "ReceiptCodeError",
    "SignedReceiptCode",
    "decode_receipt_code",
    "encode_receipt_code",
    "receipt_url",
    "verify_receipt_code",
    "verify_signed",
]
