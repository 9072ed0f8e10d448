"""Segment upload from the device's real uploader into S3-compatible object storage (a real SeaweedFS): whole
segments in one request and small resumable chunks both arrive intact; while the store cannot be reached the
server answers 503 with Retry-After, the device keeps its segments and waits as told, and once the store is
back the same upload completes with the exact bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.signing import new_private_key
from edge.identity import DeviceIdentity
from edge.upload.service import DockedUploadService
from server.app import create_app
from server.config import ServerConfig, StorageSection
from server.routes.video import STORE_RETRY_AFTER_S
from server.video.s3_store import S3Store
from server.video.storage import StoreUnavailable
from tests.s3_support import running_seaweed
from tests.signed_segments import register_identity
from tests.upload.test_segment_upload import (
    WHOLE,
    FaultyTransport,
    Rig,
    _device_rows,
    _record_segments,
    _server_rows,
    _uploader,
)


def _rig(tmp_path: Path, device: sessionmaker[Session], server: sessionmaker[Session], store: S3Store) -> Iterator[Rig]:
    identity = DeviceIdentity("DEV-UP1", new_private_key())
    register_identity(server, identity)
    app = create_app(ServerConfig(storage=StorageSection(video_dir=tmp_path / "unused")), server)
    app.state.video_store = store
    with TestClient(app) as client:
        rec_dir = tmp_path / "rec"
        rec_dir.mkdir()
        yield Rig(identity, device, server, rec_dir, tmp_path / "unused", client)


@pytest.fixture
def s3_rig(
    tmp_path: Path,
    device_sessions: sessionmaker[Session],
    server_sessions: sessionmaker[Session],
    s3_store: S3Store,
) -> Iterator[Rig]:
    yield from _rig(tmp_path, device_sessions, server_sessions, s3_store)


def _stored(store: S3Store, rig: Rig) -> set[str]:
    hashes = set()
    for row in _server_rows(rig):
        assert row.state == "stored"
        hashes.add(hashlib.sha256(b"".join(store.read_range(row.storage_key, 0, row.size - 1))).hexdigest())
    return hashes


@pytest.mark.parametrize("chunk", [WHOLE, 8 * 1024], ids=["one-request", "small-chunks"])
def test_uploaded_segments_land_in_object_storage_intact(s3_rig: Rig, s3_store: S3Store, chunk: int) -> None:
    _record_segments(s3_rig, 3)
    local = {hashlib.sha256(p.read_bytes()).hexdigest() for p in s3_rig.rec_dir.glob("*.mp4")}
    result = _uploader(s3_rig, chunk=chunk).run_once()
    assert (result.confirmed, result.stopped_because) == (3, "done")
    assert list(s3_rig.rec_dir.glob("*.mp4")) == []
    assert _stored(s3_store, s3_rig) == local
    assert all(s3_store.object_lock_until(r.storage_key) is not None for r in _server_rows(s3_rig))
    assert s3_store.partial_keys(older_than=2e9) == [], "no partial is left once committed"


def test_upload_cut_off_midway_resumes_from_the_verified_pieces_in_the_store(s3_rig: Rig, s3_store: S3Store) -> None:
    _record_segments(s3_rig, 1)
    local = {hashlib.sha256(p.read_bytes()).hexdigest() for p in s3_rig.rec_dir.glob("*.mp4")}
    faulty = FaultyTransport(s3_rig.test_client._transport, cut_on=3)
    first = _uploader(s3_rig, faulty, chunk=8 * 1024).run_once()
    assert first.stopped_because == "network"
    assert s3_store.partial_size("DEV-UP1/0000000001.mp4") == 2 * 8 * 1024
    second = _uploader(s3_rig, chunk=8 * 1024).run_once()
    assert (second.confirmed, second.stopped_because) == (1, "done")
    assert _stored(s3_store, s3_rig) == local


def test_segment_whose_commit_failed_after_its_last_byte_is_committed_on_the_next_request(
    s3_rig: Rig, s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_segments(s3_rig, 1)
    local = {hashlib.sha256(p.read_bytes()).hexdigest() for p in s3_rig.rec_dir.glob("*.mp4")}
    commit = s3_store.commit
    failed: list[str] = []

    def commit_failing_once(key: str) -> None:
        if not failed:
            failed.append(key)
            raise StoreUnavailable("the store went away during the commit")
        commit(key)

    monkeypatch.setattr(s3_store, "commit", commit_failing_once)
    first = _uploader(s3_rig, chunk=8 * 1024).run_once()
    assert (first.confirmed, first.stopped_because) == (0, "busy")
    row = _server_rows(s3_rig)[0]
    assert row.state == "uploading" and s3_store.partial_size(row.storage_key) == row.size
    second = _uploader(s3_rig, chunk=8 * 1024).run_once()
    assert (second.confirmed, second.stopped_because) == (1, "done")
    assert _stored(s3_store, s3_rig) == local


def test_store_down_answers_503_with_retry_after_and_the_upload_completes_once_it_is_back(
    tmp_path: Path, device_sessions: sessionmaker[Session], server_sessions: sessionmaker[Session]
) -> None:
    with running_seaweed() as weed:
        store = weed.store(weed.new_bucket())
        for rig in _rig(tmp_path, device_sessions, server_sessions, store):
            _record_segments(rig, 3)
            local = {hashlib.sha256(p.read_bytes()).hexdigest() for p in rig.rec_dir.glob("*.mp4")}
            assert _uploader(rig, chunk=8 * 1024).run_once().stopped_because == "done"
            _record_segments(rig, 2)
            local |= {hashlib.sha256(p.read_bytes()).hexdigest() for p in rig.rec_dir.glob("*.mp4")}
            weed.stop()
            transport = FaultyTransport(rig.test_client._transport)
            down = _uploader(rig, transport, chunk=8 * 1024).run_once()
            assert (down.confirmed, down.stopped_because) == (0, "busy")
            assert down.retry_after == STORE_RETRY_AFTER_S
            assert transport.statuses[-1] == 503
            assert len(list(rig.rec_dir.glob("*.mp4"))) == 2, "the device keeps what the server did not take"
            service = DockedUploadService(_uploader(rig), tmp_path, retry_seconds=30.0)
            assert service.pause_after(down) == STORE_RETRY_AFTER_S
            weed.start()
            again = _uploader(rig, chunk=8 * 1024).run_once()
            assert (again.confirmed, again.stopped_because) == (2, "done")
            assert list(rig.rec_dir.glob("*.mp4")) == []
            assert len(_server_rows(rig)) == 5
            assert _stored(store, rig) == local
            assert {r.upload_state for r in _device_rows(rig)} == {"confirmed"}


def test_whole_segment_in_one_request_while_the_store_is_down_is_answered_503(
    tmp_path: Path, device_sessions: sessionmaker[Session], server_sessions: sessionmaker[Session]
) -> None:
    with running_seaweed() as weed:
        store = weed.store(weed.new_bucket())
        store.locks_evidence()  # the bucket's settings are known before the store goes away
        for rig in _rig(tmp_path, device_sessions, server_sessions, store):
            _record_segments(rig, 1)
            local = {hashlib.sha256(p.read_bytes()).hexdigest() for p in rig.rec_dir.glob("*.mp4")}
            weed.stop()
            transport = FaultyTransport(rig.test_client._transport)
            down = _uploader(rig, transport, chunk=WHOLE).run_once()
            assert (down.confirmed, down.stopped_because) == (0, "busy")
            assert transport.statuses == [503]
            assert _server_rows(rig) == [], "no row says stored (or uploading) for bytes the store never took"
            weed.start()
            again = _uploader(rig, chunk=WHOLE).run_once()
            assert (again.confirmed, again.stopped_because) == (1, "done")
            assert _stored(store, rig) == local


def test_retry_after_is_read_from_a_busy_answer() -> None:
    from edge.upload.client import retry_after_seconds

    assert retry_after_seconds("15") == 15.0
    assert retry_after_seconds("99999999") == 3600.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_seconds(None) is None
