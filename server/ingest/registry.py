"""The registered devices' public keys by key id, read from the ``device`` table (provisioning fills it)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.sync.signing import Verifier, b64d
from server.db.devices import Device


@dataclass(frozen=True)
class DeviceKey:
    device_id: str
    verifier: Verifier


class DeviceRegistry:
    """Key id → (device, public key) of active devices; reloaded when an unknown key id shows up."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._by_kid: dict[str, DeviceKey] = {}
        self._loaded_at = 0.0
        self.reload()

    def reload(self) -> None:
        self._loaded_at = time.monotonic()
        with self._sessions() as session:
            rows = session.execute(
                select(Device.device_id, Device.public_key_b64).where(Device.active.is_(True))
            ).all()
        by_kid: dict[str, DeviceKey] = {}
        for device_id, key_b64 in rows:
            try:
                verifier = Verifier(b64d(key_b64, "public key"))
            except ValueError:
                continue
            by_kid[verifier.kid] = DeviceKey(device_id, verifier)
        self._by_kid = by_kid

    def lookup(self, kid: str) -> DeviceKey | None:
        found = self._by_kid.get(kid)
        if found is None and time.monotonic() - self._loaded_at > 1.0:  # bounded reloads under attack
            self.reload()
            found = self._by_kid.get(kid)
        return found
