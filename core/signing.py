"""Ed25519 keys for devices and the server: key ids, PEM encoding, signing and verification of bytes."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class BadSignature(ValueError):
    """A signature does not verify, or a key cannot be read."""


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_key_id(public_key_raw: bytes) -> str:
    """Short stable identifier of a raw 32-byte public key: the first 8 bytes of its SHA-256, hex."""
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    return raw_key_id(public_raw(key))


def public_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    return base64.b64encode(public_raw(key)).decode("ascii")


def public_from_b64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise BadSignature(f"not a base64 Ed25519 public key: {exc}") from exc


def private_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_from_pem(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BadSignature(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BadSignature("the PEM key is not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """Ed25519 signature (deterministic: the same bytes always give the same signature)."""
    return key.sign(data)


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """Raise BadSignature unless ``signature`` is ``key``'s signature of ``data``."""
    try:
        key.verify(signature, data)
    except InvalidSignature as exc:
        raise BadSignature("signature does not verify") from exc
