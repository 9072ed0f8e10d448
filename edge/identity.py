"""The device's identity: its id and Ed25519 signing key, kept in a PEM file made once at enrolment."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import (
    BadSignature,
    key_id,
    new_private_key,
    private_from_pem,
    private_to_pem,
    public_b64,
)


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    private_key: Ed25519PrivateKey

    @property
    def kid(self) -> str:
        return key_id(self.private_key)

    @property
    def public_key_b64(self) -> str:
        return public_b64(self.private_key)


def write_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a private key atomically with mode 0600 (never world-readable, never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, private_to_pem(key))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_private_key(data: bytes) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) key, or the base64 raw 32-byte key that `patrol-server device add` writes."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return private_from_pem(data)
    try:
        raw = base64.b64decode(data.strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError as exc:
        raise BadSignature(f"not a PEM or base64 Ed25519 private key: {exc}") from exc


def load_identity(device_id: str, key_file: Path, create: bool = False) -> DeviceIdentity:
    """Load the device key; with ``create`` make one if the file does not exist yet."""
    if not key_file.exists():
        if not create:
            raise FileNotFoundError(f"device key {key_file} does not exist; provision the device first")
        write_key(key_file, new_private_key())
    return DeviceIdentity(device_id, read_private_key(key_file.read_bytes()))
