"""Fixtures of the workspace tests: one recorded shift (real fMP4 segments, signed and chained by a device key)
made once per session, and the server app in this process on a fresh database with an account of each role,
the device registered, its footage uploaded over signed HTTP and a paid stop around it.

The shift (UTC): segments 1-3 at 09:10:00-09:10:06 (2 s each), a power-loss gap until 09:11:06, segments 4-5
at 09:11:06-09:11:10. The stop: drawn up 09:10:00.5, card read 09:10:03, own-card check 09:10:04.5, PIN
09:10:05, approved 09:11:07, receipts 09:11:08.5 and 09:11:09.5, bookmarked 09:10:00-09:11:10.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.receipt_code import ReceiptClaim, encode_receipt_code
from core.signing import new_private_key
from edge.identity import DeviceIdentity
from server.app import create_app
from server.config import ReviewSection, ServerConfig, StorageSection
from server.db.devices import Device
from server.review.accounts import add_supervisor
from server.video.storage import FilesystemStore, VideoStore
from tests.s3_support import SeaweedServer, running_seaweed

from .footage_support import (
    BOOKMARK,
    GAP,
    STARTS,
    TIMES,
    Shift,
    T,
    add_segment_rows,
    add_stop_rows,
    record_shift,
    upload_shift,
)

PASSWORD = "correct horse battery"
DEVICE = "DEV-WS-0001"
NUMBER = "KZ-2026-001234/1"
ACCOUNTS = {"anna": "supervisor", "olga": "auditor", "adam": "admin"}


@pytest.fixture(scope="session")
def device_identity() -> DeviceIdentity:
    return DeviceIdentity(DEVICE, new_private_key())


@pytest.fixture(scope="session")
def shift(tmp_path_factory: pytest.TempPathFactory, device_identity: DeviceIdentity) -> Shift:
    return record_shift(tmp_path_factory.mktemp("shift"), device_identity, STARTS)


def receipt_code(identity: DeviceIdentity) -> str:
    claim = ReceiptClaim(DEVICE, NUMBER, "000042", 1081250, 398, TIMES.approved)
    return encode_receipt_code(claim, identity.private_key)


@dataclass
class Workspace:
    client: TestClient
    sessions: sessionmaker[Session]
    clock: FakeClock
    store: VideoStore
    shift: Shift
    config: ServerConfig

    def login(self, login: str = "anna", password: str = PASSWORD) -> int:
        """Log in through the form as a fresh browser would; returns the status of the form's POST."""
        self.client.cookies.clear()
        page = self.client.get("/review/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        response = self.client.post(
            "/review/login", data={"csrf": token.group(1), "login": login, "password": password},
            follow_redirects=False,
        )  # fmt: skip
        return response.status_code

    def open_case(self, summary: str = "the driver disputes the speed") -> int:
        """Open a written complaint on the stop through the form; returns the case's number."""
        page = f"/review/protocols/{quote(NUMBER, safe='')}"
        response = self.client.post("/review/cases", data={
            "csrf": self.csrf(page), "protocol_number": NUMBER, "channel": "written", "reference": "",
            "summary": summary}, follow_redirects=False)  # fmt: skip
        assert response.status_code == 303, response.text[:400]
        found = re.fullmatch(r"/review/cases/(\d+)", response.headers["location"])
        assert found is not None
        return int(found.group(1))

    def csrf(self, url: str = "/review/") -> str:
        page = self.client.get(url)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        return token.group(1)


def make_workspace(
    tmp_path: Path, sessions: sessionmaker[Session], shift: Shift, upload: bool = True, store: VideoStore | None = None
) -> Iterator[Workspace]:
    clock = FakeClock(T + timedelta(hours=3))
    config = ServerConfig(
        storage=StorageSection(video_dir=tmp_path / "video"),
        review=ReviewSection(verify_interval_s=0, case_file_max_bytes=4 * 1024 * 1024),
    )
    app = create_app(config, sessions)
    app.state.review_clock = clock.now
    if store is not None:
        app.state.video_store = store
    with sessions() as session, session.begin():
        for login, role in ACCOUNTS.items():
            add_supervisor(session, login, f"{login.title()} Test", PASSWORD, clock.now(), role)
        session.add(Device(device_id=DEVICE, kid=shift.identity.kid, public_key_b64=shift.identity.public_key_b64,
                           mqtt_username=DEVICE.lower(), created_at=clock.now()))  # fmt: skip
    add_segment_rows(sessions, shift, gaps=[GAP])
    add_stop_rows(sessions, NUMBER, DEVICE, TIMES, BOOKMARK, verify_code=receipt_code(shift.identity))
    with TestClient(app) as client:
        if upload:
            assert upload_shift(str(client.base_url), shift, http=client) == len(shift.entries)
        yield Workspace(client, sessions, clock, store or FilesystemStore(tmp_path / "video"), shift, config)


@pytest.fixture
def ws(
    request: pytest.FixtureRequest, tmp_path: Path, server_sessions: sessionmaker[Session], shift: Shift
) -> Iterator[Workspace]:
    """The workspace on the filesystem store, or with ``indirect`` parameter ``"s3"`` on object storage."""
    store = request.getfixturevalue("s3_store") if getattr(request, "param", "filesystem") == "s3" else None
    yield from make_workspace(tmp_path, server_sessions, shift, store=store)


@pytest.fixture
def own_store_ws(tmp_path: Path, server_sessions: sessionmaker[Session], shift: Shift) -> Iterator[
        tuple[Workspace, SeaweedServer]]:  # fmt: skip
    """The workspace on a SeaweedFS of its own, which the test may stop and start again."""
    with running_seaweed() as weed:
        for ws in make_workspace(tmp_path, server_sessions, shift, store=weed.store(weed.new_bucket())):
            yield ws, weed
