"""Fixtures of the supervisor review tests: the server app on a migrated database with a fake review clock,
supervisor accounts, a synced protocol with payment, receipts, bookmarks, segment metadata and gaps, and a
real small MP4 segment committed to the video store."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
from server.app import create_app
from server.config import ServerConfig, StorageSection
from server.db.devices import Device
from server.db.protocols import Officer, Payment
from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent, RecordingGap, SegmentMeta
from server.db.video import VideoSegment
from server.review.accounts import add_supervisor
from server.video.storage import FilesystemStore, VideoStore, segment_key
from simulators.camera import SyntheticScene

from ..browser_support import add_protocol_row

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
DEVICE = "DEV-REV1"
NUMBER = "KZ-2026-000777"
SEGMENT = timedelta(seconds=60)


@dataclass
class Review:
    client: TestClient
    sessions: sessionmaker[Session]
    clock: FakeClock
    store: VideoStore
    mp4: bytes

    def login(self, login: str = "anna", password: str = PASSWORD, client: TestClient | None = None) -> int:
        """Log in through the form as a fresh browser would; returns the status of the form's POST."""
        c = client or self.client
        c.cookies.clear()  # a fresh browser
        page = c.get("/review/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        response = c.post(
            "/review/login",
            data={"csrf": token.group(1), "login": login, "password": password},
            follow_redirects=False,
        )
        return response.status_code

    def csrf(self) -> str:
        page = self.client.get("/review/protocols")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        return token.group(1)


@pytest.fixture(scope="session")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real two-second fragmented H.264 MP4, as the recorder writes them."""
    path = tmp_path_factory.mktemp("mp4") / "segment.mp4"
    writer = SegmentWriter(path, 160, 120, 15, EncoderSettings())
    scene = SyntheticScene(160, 120)
    for n in range(30):
        writer.write(scene.frame(n))
    writer.close()
    return path.read_bytes()


def add_people(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        add_supervisor(session, "anna", "Анна Сергеевна Ким", PASSWORD, T0)
        add_supervisor(session, "boris", "Борис Ахметов", PASSWORD, T0)
        session.add(
            Device(
                device_id=DEVICE,
                kid="kid-rev1",
                public_key_b64="A" * 43 + "=",
                mqtt_username=DEVICE.lower(),
                created_at=T0,
            )
        )
        session.add(Officer(badge="B-1001", full_name="Сейтқали Ержан", unit=""))


def add_protocol(sessions: sessionmaker[Session], number: str, at: datetime, plate: str = "123ABC01") -> None:
    add_protocol_row(sessions, number, DEVICE, at, plate, "B-1001")


def seed_stop(sessions: sessionmaker[Session], store: VideoStore, mp4: bytes) -> None:
    """Protocol ``NUMBER`` with its payment, receipts, own-card check, one bookmark 09:10:00-09:12:30 and the
    device's footage: seq 8-15 cover 09:05-09:13 minus a power-loss gap 09:11:00-09:11:20 (seq 12 starts
    after it). Stored: seq 9, 10, 11 (uploaded); seq 12 uploading; the rest known from metadata only."""
    at = T0 + timedelta(minutes=10)
    add_protocol(sessions, NUMBER, at)
    add_protocol(sessions, "KZ-2026-000778", T0 + timedelta(days=1), plate="777XYZ02")
    digest = hashlib.sha256(mp4).hexdigest()
    starts = {seq: T0 + timedelta(minutes=seq - 4) for seq in range(8, 16)}  # seq 8 = 09:04 … seq 15 = 09:11
    starts[12] = T0 + timedelta(minutes=11, seconds=20)
    starts[13] = starts[12] + SEGMENT
    starts[14] = starts[13] + SEGMENT
    starts[15] = starts[14] + SEGMENT
    with sessions() as session, session.begin():
        session.add(
            Payment(
                id="pay-1",
                device_id=DEVICE,
                protocol_number=NUMBER,
                amount_minor=1081250,
                currency="KZT",
                full_amount_minor=2162500,
                card_scheme="Mastercard",
                masked_pan="541333******4111",
                card_expiry="2812",
                card_hash="f" * 64,
                cardholder_name="ZHANBOLATOV/ARMAN",
                name_check="match",
                auth_code="A1B2C3",
                trace_no="000042",
                terminal_id="T0000001",
                officer_badge="B-1001",
                approved_at=at + timedelta(minutes=1),
                received_at=at + timedelta(minutes=2),
            )
        )
        session.add(
            OwnCardCheck(
                check_id="chk-1",
                record_id="r-chk-1",
                device_id=DEVICE,
                protocol_number=NUMBER,
                payment_id="pay-1",
                cardholder_name="ZHANBOLATOV/ARMAN",
                driver_name="Жанболатов Арман",
                result="match",
                reason="transliteration matches",
                checked_at=at + timedelta(seconds=50),
            )
        )
        for copy_no in (1, 2):
            session.add(
                ReceiptEvent(
                    record_id=f"r-rcpt-{copy_no}",
                    device_id=DEVICE,
                    job_id=f"job-{copy_no}",
                    protocol_number=NUMBER,
                    payment_id="pay-1",
                    copy_no=copy_no,
                    event="printed",
                    occurred_at=at + timedelta(minutes=1, seconds=10 * copy_no),
                )
            )
        session.add(
            Bookmark(
                bookmark_id="bm-1",
                record_id="r-bm-1",
                device_id=DEVICE,
                started_at=at,
                ended_at=at + timedelta(minutes=2, seconds=30),
                label="stop",
                protocol_number=NUMBER,
                officer_badge="B-1001",
            )
        )
        session.add(
            RecordingGap(
                gap_id="gap-1",
                record_id="r-gap-1",
                device_id=DEVICE,
                recording_id="rec-1",
                started_at=T0 + timedelta(minutes=11),
                ended_at=T0 + timedelta(minutes=11, seconds=20),
                reason="power_loss",
            )
        )
        for seq, start in starts.items():
            end = start + SEGMENT if seq != 11 else T0 + timedelta(minutes=11)
            session.add(
                SegmentMeta(
                    segment_id=f"seg-{seq}",
                    record_id=f"r-seg-{seq}",
                    device_id=DEVICE,
                    recording_id="rec-1",
                    seq=seq,
                    started_at=start,
                    ended_at=end,
                    file_name=f"{seq:010d}.mp4",
                    size_bytes=len(mp4),
                    sha256=digest,
                    codec="h264",
                    uploaded=False,
                )
            )
            if seq in (9, 10, 11, 12):
                session.add(
                    VideoSegment(
                        device_id=DEVICE,
                        seq=seq,
                        started_at=start,
                        ended_at=end,
                        frames=30,
                        size=len(mp4),
                        sha256=digest,
                        prev_hash="0" * 64,
                        entry_hash=f"{seq:064d}",
                        entry_json="{}",
                        state="stored" if seq != 12 else "uploading",
                        linked_prev=True,
                        storage_key=segment_key(DEVICE, seq),
                        created_at=start,
                        stored_at=start if seq != 12 else None,
                    )
                )
    for seq in (9, 10, 11):
        key = segment_key(DEVICE, seq)
        store.append(key, 0, mp4)
        store.commit(key)


@pytest.fixture
def review(
    request: pytest.FixtureRequest, tmp_path: Path, server_sessions: sessionmaker[Session], small_mp4: bytes
) -> Iterator[Review]:
    """The review app on the filesystem store, or with ``indirect`` parameter ``"s3"`` on object storage."""
    clock = FakeClock(T0 + timedelta(hours=2))
    config = ServerConfig(storage=StorageSection(video_dir=tmp_path / "video"))
    app = create_app(config, server_sessions)
    app.state.review_clock = clock.now
    store: VideoStore = FilesystemStore(tmp_path / "video")
    if getattr(request, "param", "filesystem") == "s3":
        store = app.state.video_store = request.getfixturevalue("s3_store")
    add_people(server_sessions)
    seed_stop(server_sessions, store, small_mp4)
    with TestClient(app) as client:
        yield Review(client, server_sessions, clock, store, small_mp4)
