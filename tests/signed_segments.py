"""Segments as a device would upload them, without recording video: random bytes with a chained manifest
entry signed by the device's key (the server checks the entry and the bytes' hash, not what they show)."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

from core.manifest import GENESIS_HASH, ManifestEntry, entry_hash, format_utc, sign_entry
from edge.identity import DeviceIdentity

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
