"""Long-running parts of the device process (recorder supervisor, uploader, sync sender), started by `run`."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from edge.config import EdgeConfig
from edge.identity import DeviceIdentity


class Service(Protocol):
    def stop(self) -> None: ...


def start_services(
    config: EdgeConfig, identity: DeviceIdentity, sessions: sessionmaker[Session]
) -> list[Service]:
    """Start every background service of the device; the caller stops them in reverse order."""
    services: list[Service] = []
    return services
