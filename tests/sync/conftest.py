"""Fixtures of the sync tests: a provisioned device on a migrated device DB, a server key, running parts."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_harness import T0, SyncRig

from core.sync.signing import Signer
from server.commands.device import add_device


@pytest.fixture
def rig(
    mqtt_url: str,
    broker_accounts: Any,
    server_sessions: sessionmaker[Session],
    device_sessions: sessionmaker[Session],
) -> Iterator[SyncRig]:
    device_id = f"PD-{uuid.uuid4().hex[:10]}"
    with server_sessions() as session, session.begin():
        dev = add_device(session, device_id, T0)
    broker_accounts.add(dev.mqtt_username, dev.mqtt_password)
    r = SyncRig(mqtt_url, server_sessions, device_sessions, dev, Signer.generate(), [], [], broker_accounts)
    try:
        yield r
    finally:
        for s in r.senders:
            s.stop()
        for w in r.workers:
            w.stop()
