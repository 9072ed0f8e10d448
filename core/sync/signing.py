"""Ed25519 keys, key ids and domain-separated signatures for everything that crosses the sync link.

Every signature covers ``DOMAIN || 0x00 || bytes``, where the domain names what is signed (a device record,
a server ack, a control message, a dataset manifest), so a signature made for one purpose never verifies as
another. A key id (``kid``) is the first 16 hex digits of the sha256 of the raw public key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.signing import BadSignature, public_raw, raw_key_id

DOMAIN_RECORD = b"pd-sync-v1"
DOMAIN_BATCH = b"pd-batch-v1"
DOMAIN_ACK = b"pd-ack-v1"
DOMAIN_CONTROL = b"pd-ctl-v1"
DOMAIN_REQUEST = b"pd-req-v1"
DOMAIN_MANIFEST = b"pd-ref-v1"


key_id = raw_key_id  # one key-id rule for device identities, receipts, uploads and sync
__all__ = [
    "DOMAIN_ACK",
    "DOMAIN_BATCH",
    "DOMAIN_CONTROL",
    "DOMAIN_MANIFEST",
    "DOMAIN_RECORD",
    "DOMAIN_REQUEST",
    "BadSignature",
    "KeyRing",
    "Signer",
    "Verifier",
    "b64d",
    "b64e",
    "key_id",
]


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str, what: str) -> bytes:
    """Strict base64 decode; ``ValueError`` naming ``what`` on bad input."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class Signer:
    """A private Ed25519 key with its key id; signs bytes under a domain."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, raw: bytes) -> Signer:
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 private key is 32 bytes, got {len(raw)}")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_b64(cls, text: str) -> Signer:
        return cls.from_raw(b64d(text.strip(), "private key"))

    def private_raw(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def public_raw(self) -> bytes:
        return public_raw(self.private)

    @property
    def kid(self) -> str:
        return key_id(self.public_raw())

    def sign(self, domain: bytes, data: bytes) -> bytes:
        return self.private.sign(domain + b"\x00" + data)


@dataclass(frozen=True)
class Verifier:
    """A public Ed25519 key with its key id."""

    public_raw: bytes
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.public_raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(self.public_raw)}")
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_raw))

    @classmethod
    def from_b64(cls, text: str) -> Verifier:
        return cls(b64d(text.strip(), "public key"))

    @property
    def kid(self) -> str:
        return key_id(self.public_raw)

    def verify(self, domain: bytes, data: bytes, signature: bytes) -> None:
        """Raise ``BadSignature`` unless ``signature`` signs ``data`` under ``domain`` with this key."""
        try:
            self._key.verify(signature, domain + b"\x00" + data)
        except InvalidSignature:
            raise BadSignature(f"signature does not verify with key {self.kid}") from None


class KeyRing:
    """Pinned public keys by key id (a list, so keys can rotate)."""

    def __init__(self, verifiers: list[Verifier] | None = None) -> None:
        self._by_kid: dict[str, Verifier] = {v.kid: v for v in verifiers or []}

    def add(self, verifier: Verifier) -> None:
        self._by_kid[verifier.kid] = verifier

    def verify(self, kid: str, domain: bytes, data: bytes, signature: bytes) -> None:
        verifier = self._by_kid.get(kid)
        if verifier is None:
            raise BadSignature(f"unknown key id {kid!r}")
        verifier.verify(domain, data, signature)

    def __len__(self) -> int:
        return len(self._by_kid)
