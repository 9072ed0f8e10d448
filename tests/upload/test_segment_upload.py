"""Upload of recorded segments to the server: ordered, resumable, verified end to end, deleted only after the
server confirms the exact hash; bad requests get clear errors and store nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock, SystemClock
from core.manifest import entry_from_json, entry_to_json, sign_entry
from core.signing import new_private_key
from core.upload_auth import sign_append, sign_request
from edge.db.recording import RecordingSegment
from edge.identity import DeviceIdentity
from edge.recorder.bookmarks import add_bookmark
from edge.recorder.index import DatabaseIndex
from edge.recorder.journal import Journal
from edge.recorder.recovery import close_segment_file, segment_name
from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
from edge.recorder.signer import SegmentSigner
from edge.upload.client import UploadClient
from edge.upload.service import DockedUploadService
from edge.upload.uploader import Uploader, upload_progress
from server.app import create_app
from server.config import ServerConfig, StorageSection
from server.db.video import VideoSegment
from server.review.accounts import add_supervisor
from server.routes.video import service_for
from server.video.storage import FilesystemStore
from simulators.camera import SyntheticScene
from simulators.power import PowerSimulator
from tests.signed_segments import register_identity

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WHOLE = 16 * 1024 * 1024  # a chunk size that sends each test segment in one request


@dataclass
class Rig:
    identity: DeviceIdentity
    device_sessions: sessionmaker[Session]
    server_sessions: sessionmaker[Session]
    rec_dir: Path
    video_dir: Path
    test_client: TestClient


def _record_segments(rig: Rig, count: int, frames: int = 45) -> None:
    journal = Journal(rig.rec_dir)
    index = DatabaseIndex(rig.device_sessions, rig.identity.device_id)
    signer = SegmentSigner(rig.identity.device_id, rig.identity.private_key, rig.identity.kid)
    scene = SyntheticScene(160, 120)
    for _ in range(count):
        seq = journal.next_seq()
        start = T0 + timedelta(seconds=(seq - 1) * frames / 15)
        path = rig.rec_dir / segment_name(seq, start)
        writer = SegmentWriter(path, 160, 120, 15, EncoderSettings())
        for n in range(frames):
            writer.write(scene.frame(seq * 1000 + n))
        closed = writer.close()
        entry = close_segment_file(journal, signer, path, seq, start, closed.frames, 15, repaired=False)
        index.segment_closed(entry, path)


@pytest.fixture
def rig(
    tmp_path: Path, device_sessions: sessionmaker[Session], server_sessions: sessionmaker[Session]
) -> Iterator[Rig]:
    identity = DeviceIdentity("DEV-UP1", new_private_key())
    register_identity(server_sessions, identity)
    config = ServerConfig(storage=StorageSection(video_dir=tmp_path / "video"))
    app = create_app(config, server_sessions)
    with TestClient(app) as client:
        rec_dir = tmp_path / "rec"
        rec_dir.mkdir()
        yield Rig(identity, device_sessions, server_sessions, rec_dir, tmp_path / "video", client)


class FaultyTransport(httpx.BaseTransport):
    """Forwards to the app, but can drop the connection on the n-th data request or flip a byte in it."""

    def __init__(
        self, inner: httpx.BaseTransport, cut_on: int | None = None, corrupt_on: int | None = None
    ) -> None:
        self.inner = inner
        self.cut_on = cut_on
        self.corrupt_on = corrupt_on
        self.data_requests = 0
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.data_requests += 1
            if self.data_requests == self.cut_on:
                raise httpx.ReadError("connection reset mid-upload")
            if self.data_requests == self.corrupt_on:
                body = bytearray(request.read())
                body[len(body) // 2] ^= 0x01
                request = httpx.Request(
                    request.method, request.url, headers=request.headers, content=bytes(body)
                )
        response = self.inner.handle_request(request)
        if request.method == "PUT":
            self.statuses.append(response.status_code)
        return response


def _uploader(rig: Rig, transport: httpx.BaseTransport | None = None, chunk: int = 8 * 1024) -> Uploader:
    http = httpx.Client(transport=transport or rig.test_client._transport, base_url="http://testserver")
    client = UploadClient("http://testserver", rig.identity, http=http)
    return Uploader(rig.device_sessions, rig.rec_dir, client, chunk_bytes=chunk)


def _server_rows(rig: Rig) -> list[VideoSegment]:
    with rig.server_sessions() as session:
        return list(session.scalars(select(VideoSegment).order_by(VideoSegment.seq)))


def _device_rows(rig: Rig) -> list[RecordingSegment]:
    with rig.device_sessions() as session:
        return list(session.scalars(select(RecordingSegment).order_by(RecordingSegment.seq)))


def test_docked_upload_stores_exact_bytes_and_deletes_local_copies_only_after_confirmation(rig: Rig) -> None:
    _record_segments(rig, 3)
    local = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in rig.rec_dir.glob("*.mp4")}
    result = _uploader(rig).run_once()
    assert (result.confirmed, result.stopped_because) == (3, "done")
    assert list(rig.rec_dir.glob("*.mp4")) == []
    rows = _server_rows(rig)
    assert [(r.seq, r.state, r.linked_prev) for r in rows] == [
        (1, "stored", True),
        (2, "stored", True),
        (3, "stored", True),
    ]
    stored = {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (rig.video_dir / "segments" / "DEV-UP1").iterdir()
    }
    assert stored == set(local.values())
    assert all(r.upload_state == "confirmed" and r.deleted_at is not None for r in _device_rows(rig))
    assert upload_progress(rig.device_sessions()).fraction == 1.0


def test_bookmarked_segments_upload_first_then_oldest(rig: Rig) -> None:
    _record_segments(rig, 3)
    with rig.device_sessions() as session, session.begin():
        seg3 = session.get(RecordingSegment, 3)
        assert seg3 is not None
        add_bookmark(
            session, "payment", "KZ-2026-000123", seg3.started_at + timedelta(seconds=1), seg3.ended_at,
            now=seg3.ended_at,
        )  # fmt: skip
    transport = FaultyTransport(rig.test_client._transport)
    uploader = _uploader(rig, transport)
    order: list[int] = []
    confirm = uploader._confirm

    def recording_confirm(seq: int, path: Path) -> None:
        order.append(seq)
        confirm(seq, path)

    uploader._confirm = recording_confirm  # type: ignore[method-assign]
    uploader.run_once()
    assert order == [3, 1, 2]


def test_upload_cut_mid_file_resumes_from_server_offset(rig: Rig) -> None:
    _record_segments(rig, 1, frames=90)
    transport = FaultyTransport(rig.test_client._transport, cut_on=3)
    first = _uploader(rig, transport).run_once()
    assert first.stopped_because == "network"
    assert len(list(rig.rec_dir.glob("*.mp4"))) == 1, "nothing is deleted before confirmation"
    sent_before = _device_rows(rig)[0].uploaded_bytes
    assert sent_before > 0
    resumed = FaultyTransport(rig.test_client._transport)
    second = _uploader(rig, resumed).run_once()
    assert second.confirmed == 1
    size = _device_rows(rig)[0].size
    assert resumed.data_requests == -(-(size - sent_before) // (8 * 1024)), (
        "resume sends only the missing bytes"
    )


def test_unplugging_pauses_and_docking_again_resumes(rig: Rig) -> None:
    _record_segments(rig, 2, frames=90)
    docked = iter([True, True, True, False])
    paused = _uploader(rig).run_once(should_continue=lambda: next(docked, False))
    assert paused.stopped_because == "undocked"
    assert len(list(rig.rec_dir.glob("*.mp4"))) == 2
    resumed = _uploader(rig).run_once()
    assert resumed.confirmed == 2 and list(rig.rec_dir.glob("*.mp4")) == []


def test_byte_corrupted_in_transit_is_rejected_and_sent_again(rig: Rig) -> None:
    _record_segments(rig, 1, frames=60)
    transport = FaultyTransport(rig.test_client._transport, corrupt_on=2)
    result = _uploader(rig, transport).run_once()
    assert result.confirmed == 1
    assert 460 in transport.statuses
    stored = next((rig.video_dir / "segments" / "DEV-UP1").iterdir())
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == _device_rows(rig)[0].sha256


@pytest.mark.parametrize("chunk", [8 * 1024, WHOLE], ids=["chunked", "whole"])
def test_local_file_that_no_longer_matches_its_hash_is_never_confirmed_and_stays(
    rig: Rig, chunk: int
) -> None:
    _record_segments(rig, 1)
    path = next(rig.rec_dir.glob("*.mp4"))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # bit rot on the device's flash after the segment was hashed
    path.write_bytes(bytes(data))
    result = _uploader(rig, chunk=chunk).run_once()
    assert result.confirmed == 0 and result.stopped_because == "retry_limit"
    assert path.exists()
    assert _device_rows(rig)[0].upload_state == "pending"
    assert _server_rows(rig)[0].state == "uploading"
    assert list((rig.video_dir / "segments").glob("**/*.mp4")) == []
    assert list((rig.video_dir / "partial").glob("**/*.incoming")) == []


def test_segment_the_server_can_never_store_is_marked_rejected_and_kept(rig: Rig) -> None:
    _record_segments(rig, 1)
    with rig.device_sessions() as session, session.begin():
        row = session.get(RecordingSegment, 1)
        assert row is not None
        entry = entry_from_json(row.entry_json)
        forged = sign_entry(entry, new_private_key())  # signed by a key the server does not know
        row.entry_json = entry_to_json(forged)
    result = _uploader(rig).run_once()
    assert result.rejected == 1
    row_after = _device_rows(rig)[0]
    assert row_after.upload_state == "rejected" and "signature" in (row_after.upload_error or "")
    assert len(list(rig.rec_dir.glob("*.mp4"))) == 1
    assert _server_rows(rig) == []


# --- bad input to the upload API -----------------------------------------------------------------------


def _signed(
    rig: Rig,
    method: str,
    path: str,
    body: bytes = b"",
    identity: DeviceIdentity | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    who = identity or rig.identity
    return sign_request(who.private_key, who.device_id, method, path, body, now or datetime.now(UTC))


def _signed_append(
    rig: Rig, path: str, prefix: bytes, chunk: bytes, offset: int | None = None
) -> dict[str, str]:
    """Headers of a data PUT of ``chunk`` after ``prefix`` (``offset`` defaults to ``len(prefix)``)."""
    before = hashlib.sha256(prefix).hexdigest()
    after = hashlib.sha256(prefix + chunk).hexdigest()
    at = len(prefix) if offset is None else offset
    who = rig.identity
    return sign_append(who.private_key, who.device_id, path, at, before, after, datetime.now(UTC))


def _entry_json(rig: Rig, seq: int = 1) -> str:
    return _device_rows(rig)[seq - 1].entry_json


def _nothing_stored(rig: Rig) -> bool:
    return (
        _server_rows(rig) == []
        and not any((rig.video_dir).glob("**/*.mp4"))
        and not any(p.is_file() for p in (rig.video_dir / "partial").glob("**/*"))
    )


def test_device_cannot_write_another_devices_segments(rig: Rig) -> None:
    _record_segments(rig, 1)
    other = DeviceIdentity("DEV-OTHER", new_private_key())
    register_identity(rig.server_sessions, other)
    path = "/api/video/segments/DEV-UP1/1"
    body = _entry_json(rig).encode()
    response = rig.test_client.post(
        path, content=body, headers=_signed(rig, "POST", path, body, identity=other)
    )
    assert response.status_code == 403 and "may not write" in response.json()["error"]
    assert _nothing_stored(rig)


def test_unsigned_stale_or_unknown_requests_are_refused(rig: Rig) -> None:
    _record_segments(rig, 1)
    path = "/api/video/segments/DEV-UP1/1"
    body = _entry_json(rig).encode()
    assert rig.test_client.post(path, content=body).status_code == 401
    stale = _signed(rig, "POST", path, body, now=datetime.now(UTC) - timedelta(minutes=10))
    assert rig.test_client.post(path, content=body, headers=stale).status_code == 401
    stranger = DeviceIdentity("DEV-NOBODY", new_private_key())
    unknown = rig.test_client.post(
        path, content=body, headers=_signed(rig, "POST", path, body, identity=stranger)
    )
    assert unknown.status_code == 401 and "unknown" in unknown.json()["error"]
    assert _nothing_stored(rig)


def test_signed_requests_are_judged_by_the_apps_clock_not_the_wall_clock(
    rig: Rig, tmp_path: Path, server_sessions: sessionmaker[Session]
) -> None:
    _record_segments(rig, 1)
    path = "/api/video/segments/DEV-UP1/1"
    body = _entry_json(rig).encode()
    config = ServerConfig(storage=StorageSection(video_dir=tmp_path / "video-clock"))
    clock = FakeClock(T0 - timedelta(days=300))  # the server's time, far from the wall clock's
    with TestClient(create_app(config, server_sessions, clock=clock)) as client:
        wall = client.post(path, content=body, headers=_signed(rig, "POST", path, body))
        assert wall.status_code == 401, "signed at wall time: out of the app clock's skew"
        clock.advance(60)
        on_time = client.post(path, content=body, headers=_signed(rig, "POST", path, body, now=clock.now()))
        assert on_time.status_code < 300, on_time.text


@pytest.mark.parametrize("device_part", ["..%2F..%2Fetc", "DEV-UP1%2F..%2F..", "-leading-dash", "a" * 65])
def test_path_traversal_in_names_is_a_bad_request(rig: Rig, device_part: str) -> None:
    path = f"/api/video/segments/{device_part}/1"
    response = rig.test_client.post(path, content=b"{}", headers=_signed(rig, "POST", path, b"{}"))
    assert response.status_code in (400, 404)
    assert _nothing_stored(rig)


def test_wrong_offset_gets_the_current_one_and_writes_nothing(rig: Rig) -> None:
    _record_segments(rig, 1)
    path = "/api/video/segments/DEV-UP1/1"
    body = _entry_json(rig).encode()
    assert (
        rig.test_client.post(path, content=body, headers=_signed(rig, "POST", path, body)).status_code == 200
    )
    data_path = path + "/data"
    chunk = b"x" * 100
    response = rig.test_client.put(
        data_path, content=chunk, headers=_signed_append(rig, data_path, b"p" * 500, chunk)
    )
    assert response.status_code == 409 and response.json()["offset"] == 0
    bad = rig.test_client.put(
        data_path,
        content=chunk,
        headers={**_signed_append(rig, data_path, b"", chunk), "Upload-Offset": "-1"},
    )
    assert bad.status_code == 400
    moved = rig.test_client.put(
        data_path, content=chunk, headers={**_signed_append(rig, data_path, b"", chunk), "Upload-Offset": "5"}
    )
    assert moved.status_code == 401, "the offset is covered by the signature"
    assert not any(p.is_file() and p.stat().st_size for p in (rig.video_dir / "partial").glob("**/*"))


def test_oversize_segment_and_oversize_chunk_are_refused(rig: Rig) -> None:
    _record_segments(rig, 1)
    row = _device_rows(rig)[0]
    entry = entry_from_json(row.entry_json)
    big = sign_entry(
        entry.__class__(**{**entry.to_dict(), "size": 2**31, "signature": ""}), rig.identity.private_key
    )
    path = "/api/video/segments/DEV-UP1/1"
    body = entry_to_json(big).encode()
    response = rig.test_client.post(path, content=body, headers=_signed(rig, "POST", path, body))
    assert response.status_code == 413
    ok_body = row.entry_json.encode()
    assert (
        rig.test_client.post(path, content=ok_body, headers=_signed(rig, "POST", path, ok_body)).status_code
        == 200
    )
    data_path = path + "/data"
    chunk = b"y" * (row.size + 1)
    past_end = rig.test_client.put(
        data_path, content=chunk, headers=_signed_append(rig, data_path, b"", chunk)
    )
    assert past_end.status_code == 413
    assert not any((rig.video_dir / "segments").glob("**/*.mp4"))


def test_entry_that_breaks_the_chain_is_refused(rig: Rig) -> None:
    _record_segments(rig, 2)
    assert _uploader(rig).run_once().confirmed == 2
    entry2 = entry_from_json(_device_rows(rig)[1].entry_json)
    fake3 = sign_entry(
        entry2.__class__(**{**entry2.to_dict(), "seq": 3, "prev_hash": "ab" * 32, "signature": ""}),
        rig.identity.private_key,
    )
    path = "/api/video/segments/DEV-UP1/3"
    body = entry_to_json(fake3).encode()
    response = rig.test_client.post(path, content=body, headers=_signed(rig, "POST", path, body))
    assert response.status_code == 400 and "broken chain" in response.json()["error"]
    assert [r.seq for r in _server_rows(rig)] == [1, 2]


def test_malformed_entries_get_a_clear_error(rig: Rig) -> None:
    path = "/api/video/segments/DEV-UP1/1"
    for body, word in [
        (b"not json", "JSON"),
        (b"[]", "object"),
        (json.dumps({"device_id": "DEV-UP1"}).encode(), "seq"),
    ]:
        response = rig.test_client.post(path, content=body, headers=_signed(rig, "POST", path, body))
        assert response.status_code == 400 and word in response.json()["error"]
    assert _nothing_stored(rig)


def test_stored_segment_plays_with_range_requests_for_a_logged_in_supervisor(rig: Rig) -> None:
    _record_segments(rig, 1)
    size = _device_rows(rig)[0].size
    _uploader(rig).run_once()
    url = "/api/video/segments/DEV-UP1/1/content"
    assert rig.test_client.get(url).status_code == 401  # footage is evidence: no anonymous playback
    with rig.server_sessions() as session, session.begin():
        add_supervisor(session, "rita", "Rita Review", "correct horse battery", datetime.now(UTC))
    page = rig.test_client.get("/review/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    login = {"csrf": token.group(1), "login": "rita", "password": "correct horse battery"}
    assert rig.test_client.post("/review/login", data=login, follow_redirects=False).status_code == 303
    full = rig.test_client.get(url)
    assert full.status_code == 200 and len(full.content) == size
    part = rig.test_client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    tail = rig.test_client.get(url, headers={"Range": "bytes=-50"})
    assert tail.content == full.content[-50:]
    assert rig.test_client.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416


class DockingTransport(httpx.BaseTransport):
    """Forwards to the app, counts data bytes sent, and can pull the device off the charger on the n-th PUT."""

    def __init__(self, inner: httpx.BaseTransport, power: PowerSimulator, undock_on: int) -> None:
        self.inner = inner
        self.power = power
        self.undock_on = undock_on
        self.puts = 0
        self.put_bytes = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.puts += 1
            self.put_bytes += len(request.read())
            if self.puts == self.undock_on:
                self.power.undock()
        return self.inner.handle_request(request)


class ObservedService(DockedUploadService):
    """The real service; counts how often it looked at the charger so the test can wait for it."""

    polls = 0

    def docked(self) -> bool:
        self.polls += 1
        return super().docked()


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_dock_starts_upload_undock_pauses_and_docking_again_resumes(rig: Rig, tmp_path: Path) -> None:
    _record_segments(rig, 2, frames=90)
    power = PowerSimulator(tmp_path / "power_supply")
    transport = DockingTransport(rig.test_client._transport, power, undock_on=3)
    service = ObservedService(_uploader(rig, transport), power.root, poll_seconds=0.01, retry_seconds=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait(lambda: service.polls >= 5, "the service has looked at the charger a few times")
        assert transport.puts == 0, "nothing is sent while off the charger"

        power.dock()
        _wait(lambda: service.last_result == "undocked", "unplugging paused the upload")
        assert transport.puts == 3, "no chunk is sent after the charger went offline"
        assert len(list(rig.rec_dir.glob("*.mp4"))) == 2, "nothing deleted before confirmation"
        sent = _device_rows(rig)[0].uploaded_bytes
        assert sent > 0
        polls = service.polls
        _wait(lambda: service.polls >= polls + 5, "the service kept watching while undocked")
        assert transport.puts == 3

        power.dock()
        _wait(lambda: service.last_result == "done", "docking again finished the upload")
    finally:
        stop.set()
        thread.join(timeout=10)
    rows = _device_rows(rig)
    assert all(r.upload_state == "confirmed" and r.deleted_at is not None for r in rows)
    assert list(rig.rec_dir.glob("*.mp4")) == []
    assert [r.state for r in _server_rows(rig)] == ["stored", "stored"]
    assert transport.put_bytes == sum(r.size for r in rows), "the resumed upload sent no byte twice"


def _restarted_server(rig: Rig) -> TestClient:
    """A new server process in effect: a fresh app on the same database and video folder (no running hashes)."""
    app = create_app(ServerConfig(storage=StorageSection(video_dir=rig.video_dir)), rig.server_sessions)
    return TestClient(app)


def test_resume_after_server_restart_rebuilds_the_running_hash_from_stored_bytes(rig: Rig) -> None:
    _record_segments(rig, 1, frames=90)
    first = _uploader(rig, FaultyTransport(rig.test_client._transport, cut_on=3)).run_once()
    assert first.stopped_because == "network"
    sent_before = _device_rows(rig)[0].uploaded_bytes
    assert sent_before > 0
    with _restarted_server(rig) as restarted:
        resumed = FaultyTransport(restarted._transport)
        assert _uploader(rig, resumed).run_once().confirmed == 1
    row = _device_rows(rig)[0]
    assert resumed.data_requests == -(-(row.size - sent_before) // (8 * 1024)), "only the missing bytes"
    stored = next((rig.video_dir / "segments" / "DEV-UP1").iterdir())
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256


def test_stored_prefix_damaged_while_the_server_was_down_is_discarded_and_sent_again(rig: Rig) -> None:
    _record_segments(rig, 1, frames=90)
    assert _uploader(
        rig, FaultyTransport(rig.test_client._transport, cut_on=3)
    ).run_once().stopped_because == ("network")
    partial = next((rig.video_dir / "partial" / "DEV-UP1").iterdir())
    damaged = bytearray(partial.read_bytes())
    damaged[100] ^= 0x01
    partial.write_bytes(bytes(damaged))
    with _restarted_server(rig) as restarted:
        resumed = FaultyTransport(restarted._transport)
        assert _uploader(rig, resumed).run_once().confirmed == 1
    assert 460 in resumed.statuses, "the device's signed prefix hash exposed the damage"
    row = _device_rows(rig)[0]
    stored = next((rig.video_dir / "segments" / "DEV-UP1").iterdir())
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256


def test_body_that_does_not_match_the_signed_prefix_hash_writes_nothing(rig: Rig) -> None:
    _record_segments(rig, 1)
    path = "/api/video/segments/DEV-UP1/1"
    body = _entry_json(rig).encode()
    assert (
        rig.test_client.post(path, content=body, headers=_signed(rig, "POST", path, body)).status_code == 200
    )
    data_path = path + "/data"
    headers = _signed_append(rig, data_path, b"", b"a" * 100)
    response = rig.test_client.put(data_path, content=b"b" * 100, headers=headers)
    assert response.status_code == 460 and response.json()["retry"] is True
    assert not any(p.is_file() and p.stat().st_size for p in (rig.video_dir / "partial").glob("**/*"))


def test_whole_segments_in_one_request_each_are_stored_with_one_commit_per_segment(rig: Rig) -> None:
    _record_segments(rig, 3)
    local = {hashlib.sha256(p.read_bytes()).hexdigest() for p in rig.rec_dir.glob("*.mp4")}
    engine = rig.server_sessions.kw["bind"]
    commits: list[int] = []
    listener = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    try:
        transport = FaultyTransport(rig.test_client._transport)
        result = _uploader(rig, transport, chunk=WHOLE).run_once()
    finally:
        event.remove(engine, "commit", listener)
    assert (result.confirmed, transport.data_requests) == (3, 3)
    assert len(commits) == 3, "each segment's row is written once, already stored"
    rows = _server_rows(rig)
    assert [(r.seq, r.state, r.linked_prev) for r in rows] == [
        (1, "stored", True),
        (2, "stored", True),
        (3, "stored", True),
    ]
    assert all(r.stored_at is not None for r in rows)
    stored = {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (rig.video_dir / "segments" / "DEV-UP1").iterdir()
    }
    assert stored == local
    assert not any(p.is_file() for p in (rig.video_dir / "partial").glob("**/*")), "no staging file is left"
    assert list(rig.rec_dir.glob("*.mp4")) == []


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_uploads_wait_for_the_database_and_the_disk_off_the_event_loop(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync of a segment or a database commit on the server's event loop would stall every other
    request (other devices' uploads, the review UI) for as long as the disk takes."""
    _record_segments(rig, 2)
    fsyncs: list[bool] = []
    commits: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsyncs.append(_in_event_loop())
        real_fsync(fd)

    def commit(_conn: object) -> None:
        commits.append(_in_event_loop())

    monkeypatch.setattr(os, "fsync", fsync)
    engine = rig.server_sessions.kw["bind"]
    event.listen(engine, "commit", commit)
    try:
        whole = _uploader(rig, chunk=WHOLE).run_once()  # one request per segment: announce, store, commit
        chunked = _uploader(rig, chunk=64 * 1024)
        _record_segments(rig, 1)
        pieces = chunked.run_once()  # the third segment in many appends
    finally:
        event.remove(engine, "commit", commit)
    assert (whole.confirmed, pieces.confirmed) == (2, 1)
    assert [r.state for r in _server_rows(rig)] == ["stored"] * 3
    assert fsyncs and not any(fsyncs), "a segment was fsynced on the event loop"
    assert commits and not any(commits), "the database committed on the event loop"


def test_a_segment_waiting_for_the_disk_does_not_hold_up_another(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Devices dock together at the end of a shift: one segment's commit waiting for a slow disk must not make
    every other upload wait behind it (each segment is serialised only with itself)."""
    _record_segments(rig, 2)
    held, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        frame = sys._getframe(1)
        in_append = False
        while frame is not None and not in_append:
            in_append, frame = frame.f_code.co_name == "_append", frame.f_back  # type: ignore[assignment]
        if in_append and not held.is_set():  # the first segment's commit: the disk stalls
            held.set()
            release.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    done: dict[int, int] = {}

    def upload(seq: int) -> None:
        row = _device_rows(rig)[seq - 1]
        data = (rig.rec_dir / row.file_name).read_bytes()
        http = httpx.Client(transport=rig.test_client._transport, base_url="http://testserver")
        client = UploadClient("http://testserver", rig.identity, http=http)
        empty, whole = hashlib.sha256(b"").hexdigest(), hashlib.sha256(data).hexdigest()
        done[seq] = client.append(seq, 0, data, empty, whole, row.entry_json).offset

    first = threading.Thread(target=upload, args=(1,))
    first.start()
    try:
        assert held.wait(30), "the first upload never reached its commit"
        second = threading.Thread(target=upload, args=(2,))
        second.start()
        second.join(20)
        stored_meanwhile = dict(done)
    finally:
        release.set()
        first.join(30)
    assert 1 not in stored_meanwhile and 2 in stored_meanwhile, (
        "the second upload waited for the first's disk"
    )
    assert sorted(done) == [1, 2]
    assert [r.state for r in _server_rows(rig)] == ["stored", "stored"]


def test_the_server_keeps_no_per_segment_state_once_uploads_are_done(rig: Rig) -> None:
    """A server up for months receives millions of segments: nothing per segment may stay in memory after
    its requests end (one lock per segment ever seen grew by ~200 bytes a segment, for ever)."""
    _record_segments(rig, 3)
    whole = _uploader(rig, chunk=WHOLE).run_once()
    _record_segments(rig, 1)
    pieces = _uploader(rig, chunk=64 * 1024).run_once()  # many appends to one segment
    assert (whole.confirmed, pieces.confirmed) == (3, 1)
    service = service_for(rig.test_client.app)
    assert service.locks._local == {} and len(service._running) == 0


def test_whole_segment_damaged_in_transit_leaves_no_row_or_file_and_is_sent_again(rig: Rig) -> None:
    _record_segments(rig, 1)
    seen: list[tuple[int, bool]] = []

    class Watch(FaultyTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "PUT" and response.status_code == 460:
                seen.append((len(_server_rows(rig)), any(p.is_file() for p in rig.video_dir.glob("**/*.*"))))
            return response

    transport = Watch(rig.test_client._transport, corrupt_on=1)
    assert _uploader(rig, transport, chunk=WHOLE).run_once().confirmed == 1
    assert seen == [(0, False)], "the damaged body left neither a row nor a partial, staged or stored file"
    row = _device_rows(rig)[0]
    stored = next((rig.video_dir / "segments" / "DEV-UP1").iterdir())
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == row.sha256
    assert _server_rows(rig)[0].state == "stored"


def test_object_committed_without_its_row_before_a_crash_is_stored_again_and_recorded(rig: Rig) -> None:
    _record_segments(rig, 1)
    orphan = rig.video_dir / "segments" / "DEV-UP1" / "0000000001.mp4"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a crash between committing the object and its row")
    assert _uploader(rig, chunk=WHOLE).run_once().confirmed == 1
    row = _device_rows(rig)[0]
    assert hashlib.sha256(orphan.read_bytes()).hexdigest() == row.sha256
    assert [r.state for r in _server_rows(rig)] == ["stored"]


def test_orphan_object_with_an_uploading_row_is_not_taken_as_stored(rig: Rig) -> None:
    _record_segments(rig, 1)
    path = "/api/video/segments/DEV-UP1/1"
    body = _entry_json(rig).encode()
    assert (
        rig.test_client.post(path, content=body, headers=_signed(rig, "POST", path, body)).status_code == 200
    )
    orphan = rig.video_dir / "segments" / "DEV-UP1" / "0000000001.mp4"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"not the segment")
    assert _uploader(rig, chunk=WHOLE).run_once().confirmed == 1
    assert hashlib.sha256(orphan.read_bytes()).hexdigest() == _device_rows(rig)[0].sha256
    assert [r.state for r in _server_rows(rig)] == ["stored"]


def test_bytes_held_without_a_row_are_resumed_from_not_resent(rig: Rig) -> None:
    _record_segments(rig, 1)
    local = next(rig.rec_dir.glob("*.mp4")).read_bytes()
    partial = rig.video_dir / "partial" / "DEV-UP1" / "0000000001.mp4"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(local[:1000])  # written before a crash, its segment's row never committed
    transport = FaultyTransport(rig.test_client._transport)
    assert _uploader(rig, transport, chunk=WHOLE).run_once().confirmed == 1
    assert transport.statuses == [409, 201], "the server answered its offset; the rest went in one request"
    stored = rig.video_dir / "segments" / "DEV-UP1" / "0000000001.mp4"
    assert stored.read_bytes() == local
    assert [r.state for r in _server_rows(rig)] == ["stored"]


# --- staging files left behind by a crash --------------------------------------------------------------

HOURS_AGO_2 = 2 * 3600.0


def _age(path: Path, seconds: float) -> None:
    """Set the file's modification time ``seconds`` into the past (as if a crash left it then)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_staging_files_left_by_a_crash_are_swept_at_server_start_after_the_grace_period(
    tmp_path: Path, server_sessions: sessionmaker[Session]
) -> None:
    folder = tmp_path / "video" / "partial" / "DEV-UP1"
    folder.mkdir(parents=True)
    orphan = folder / "0000000001.mp4.k2j4h1.incoming"
    recent = folder / "0000000002.mp4.p9x8w7.incoming"
    resumable = folder / "0000000003.mp4"  # bytes of an upload whose row never committed: resumed later
    for path in (orphan, recent, resumable):
        path.write_bytes(b"half a segment")
    _age(orphan, HOURS_AGO_2)
    _age(resumable, HOURS_AGO_2)
    _age(recent, 60)
    app = create_app(ServerConfig(storage=StorageSection(video_dir=tmp_path / "video")), server_sessions)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code < 500
        assert not orphan.exists(), "an old staging file is deleted before the server serves"
        assert recent.exists(), "a staging file younger than the grace period may belong to a live request"
        assert resumable.exists(), "a partial without a row is kept for the device to resume from"


def test_server_start_without_a_video_folder_creates_nothing(
    tmp_path: Path, server_sessions: sessionmaker[Session]
) -> None:
    app = create_app(ServerConfig(storage=StorageSection(video_dir=tmp_path / "video")), server_sessions)
    with TestClient(app):
        pass
    assert not (tmp_path / "video").exists()


def test_partial_left_beside_a_stored_segment_is_swept_and_the_stored_object_kept(rig: Rig) -> None:
    _record_segments(rig, 1)
    local = next(rig.rec_dir.glob("*.mp4")).read_bytes()
    assert _uploader(rig, chunk=WHOLE).run_once().confirmed == 1
    stale = rig.video_dir / "partial" / "DEV-UP1" / "0000000001.mp4"
    stale.write_bytes(local[:500])  # reappeared after a crash: the rename into segments/ was not yet durable
    _age(stale, HOURS_AGO_2)
    removed = service_for(rig.test_client.app).sweep_orphans(grace_seconds=3600)
    assert removed == ["DEV-UP1/0000000001.mp4"] and not stale.exists()
    assert (rig.video_dir / "segments" / "DEV-UP1" / "0000000001.mp4").read_bytes() == local
    assert [r.state for r in _server_rows(rig)] == ["stored"]


def test_staging_file_of_a_request_in_progress_is_never_swept(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "video")
    staged = store.stage("DEV-UP1/0000000001.mp4")
    staged.write(b"arriving slowly")
    _age(staged.path, HOURS_AGO_2)
    assert store.sweep_staging(older_than=time.time()) == []
    assert staged.path.exists()
    staged.discard()
    leftover = store.stage("DEV-UP1/0000000002.mp4")
    leftover.sync_and_close()  # closed but never committed or discarded: what a crash leaves
    _age(leftover.path, HOURS_AGO_2)
    assert store.sweep_staging(older_than=time.time() - 3600) == [f"DEV-UP1/{leftover.path.name}"]
    assert not leftover.path.exists()


def test_a_content_length_that_is_not_ascii_digits_is_a_400(rig: Rig) -> None:
    """'²' passed str.isdigit and then made int() fail (a 500); sent as the raw byte to the application."""

    async def put() -> httpx.Response:
        transport = httpx.ASGITransport(app=rig.test_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            headers = [(b"Upload-Offset", b"0"), (b"Content-Length", b"\xb2")]
            return await http.put("/api/video/segments/DEV-UP1/1/data", content=b"x", headers=headers)

    response = asyncio.run(put())
    assert response.status_code == 400 and "Content-Length" in response.json()["error"]


class _SlotFreeingClock(SystemClock):
    """The uploader's clock: its first pause (waiting out a busy answer) is when the server's slot frees."""

    def __init__(self, free: Callable[[], None]) -> None:
        self.free = free
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return super().monotonic() + sum(self.pauses)

    def sleep(self, seconds: float) -> None:  # time passes at once
        if not self.pauses:
            self.free()
        self.pauses.append(seconds)


def test_upload_slots_follow_the_config_and_a_busy_answer_is_waited_out_within_the_run(
    tmp_path: Path, device_sessions: sessionmaker[Session], server_sessions: sessionmaker[Session]
) -> None:
    """Every upload slot taken (as at a dock rush): the server answers 503 busy with Retry-After; the
    uploader waits that long and sends again in the same run, which ends ``done`` with everything stored."""
    identity = DeviceIdentity("DEV-UP1", new_private_key())
    register_identity(server_sessions, identity)
    config = ServerConfig(storage=StorageSection(video_dir=tmp_path / "video", max_concurrent_uploads=2))
    app = create_app(config, server_sessions)
    with TestClient(app) as client:
        rec_dir = tmp_path / "rec"
        rec_dir.mkdir()
        rig = Rig(identity, device_sessions, server_sessions, rec_dir, tmp_path / "video", client)
        _record_segments(rig, 2)
        slots = service_for(app)._slots
        assert slots.acquire(blocking=False) and slots.acquire(blocking=False)
        assert not slots.acquire(blocking=False), "two slots, as configured"
        clock = _SlotFreeingClock(lambda: (slots.release(), slots.release()))
        transport = FaultyTransport(client._transport)
        uploader = _uploader(rig, transport, chunk=WHOLE)
        uploader.clock = clock
        result = uploader.run_once()
        assert (result.confirmed, result.stopped_because) == (2, "done")
        assert transport.statuses[0] == 503 and transport.statuses.count(503) == 1
        assert 4.9 <= sum(clock.pauses) <= 5.0 and uploader.busy_waits == 1  # the server's Retry-After
        assert list(rec_dir.glob("*.mp4")) == []
        assert [r.state for r in _server_rows(rig)] == ["stored", "stored"]
