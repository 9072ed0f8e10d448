"""Segments as a device would upload them, without recording video: random bytes with a chained manifest
entry signed by the device's key (the server checks the entry and the bytes' hash, not what they show); and
the device registered on the server with a fresh key."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from core.manifest import GENESIS_HASH, ManifestEntry, entry_hash, format_utc, sign_entry
from core.signing import new_private_key, public_b64
from edge.identity import DeviceIdentity
from server.db.devices import Device

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def signed_segments(identity: DeviceIdentity, count: int, size: int) -> list[tuple[ManifestEntry, bytes]]:
    """``count`` chained segments of ``size`` random bytes from seq 1, with their signed manifest entries."""
    made: list[tuple[ManifestEntry, bytes]] = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        data = os.urandom(size)
        start = T0 + timedelta(seconds=3 * (seq - 1))
        entry = sign_entry(
            ManifestEntry(
                device_id=identity.device_id,
                seq=seq,
                start_utc=format_utc(start),
                end_utc=format_utc(start + timedelta(seconds=3)),
                frames=45,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                prev_hash=prev,
                kid=identity.kid,
            ),
            identity.private_key,
        )
        prev = entry_hash(entry)
        made.append((entry, data))
    return made


def register_identity(sessions: sessionmaker[Session], identity: DeviceIdentity) -> None:
    """Register (active) the device ``identity`` in the server database of ``sessions``."""
    with sessions() as session, session.begin():
        session.add(
            Device(
                device_id=identity.device_id,
                kid=identity.kid,
                public_key_b64=public_b64(identity.private_key),
                mqtt_username=identity.device_id.lower(),
                created_at=T0,
            )
        )


def registered_device(sessions: sessionmaker[Session], device_id: str) -> DeviceIdentity:
    """A device with a fresh key, registered (active) in the server database of ``sessions``."""
    identity = DeviceIdentity(device_id, new_private_key())
    register_identity(sessions, identity)
    return identity
