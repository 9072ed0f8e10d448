"""The key material that signs manifest entries: the device id, its Ed25519 key and the key id."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class SegmentSigner:
    device_id: str
    private_key: Ed25519PrivateKey
    kid: str = ""
