"""The device's identity: its id and Ed25519 signing key, kept in a PEM file made once at enrolment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.signing import key_id, new_private_key, private_from_pem, private_to_pem, public_b64


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


def load_identity(device_id: str, key_file: Path, create: bool = False) -> DeviceIdentity:
    """Load the device key; with ``create`` make one if the file does not exist yet."""
    if not key_file.exists():
        if not create:
            raise FileNotFoundError(f"device key {key_file} does not exist; provision the device first")
        write_key(key_file, new_private_key())
    return DeviceIdentity(device_id, private_from_pem(key_file.read_bytes()))
