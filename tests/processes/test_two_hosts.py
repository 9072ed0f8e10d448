"""Two `patrol-server` processes share one database and one video store: the same segment uploaded through
both at once ends as exactly one stored segment with its bytes intact (the only refusal either host gives is
the protocol's offset conflict, 409, after which the device resumes), and a supervisor logged in on one host
plays it through the other. On PostgreSQL the hosts serialise a segment with an advisory lock; on SQLite
(one host machine) with a record lock on a file next to the database."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from http_hosts import http_hosts
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.manifest import ManifestEntry, entry_to_json
from edge.upload.client import UploadClient, UploadRejected
from server.db.video import VideoSegment
from server.review.accounts import add_supervisor
from tests.signed_segments import registered_device, signed_segments

pytestmark = [pytest.mark.timeout(240), pytest.mark.backend]
SEGMENT_BYTES = 1024 * 1024 + 123
CHUNK = 96 * 1024


@pytest.fixture
def hosts(tmp_path: Path, server_db_url: str, server_sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    """Two server processes on one (already migrated) database and one video folder; their base URLs."""
    with http_hosts(tmp_path, server_db_url, tmp_path / "shared-video", ["host-a", "host-b"]) as urls:
        yield urls


def _send(client: UploadClient, entry: ManifestEntry, data: bytes, whole: bool, refusals: list[int]) -> str:
    """Upload one segment as a device does: announce and send the whole segment in one request, or announce
    and then send chunks from wherever the server says it stands. Returns the final state."""
    entry_json = entry_to_json(entry)
    if whole:
        digest = hashlib.sha256(data).hexdigest()
        try:
            return client.append(entry.seq, 0, data, hashlib.sha256().hexdigest(), digest, entry_json).state
        except UploadRejected as exc:
            refusals.append(exc.status)
            state = client.status(entry.seq)
            return "" if state is None else state.state
    state = client.announce(entry.seq, entry_json)
    offset = state.offset
    while state.state != "stored":
        chunk = data[offset : offset + CHUNK]
        before = hashlib.sha256(data[:offset]).hexdigest()
        after = hashlib.sha256(data[: offset + len(chunk)]).hexdigest()
        try:
            state = client.append(entry.seq, offset, chunk, before, after)
            offset = state.offset
        except UploadRejected as exc:
            refusals.append(exc.status)
            if exc.status != 409 or exc.offset is None:
                raise
            offset = exc.offset
    return state.state


def _race(
    clients: list[UploadClient], entry: ManifestEntry, data: bytes, whole: bool, refusals: list[int]
) -> list[str]:
    """Every client uploads the segment at the same moment; their final states."""
    start = threading.Barrier(len(clients))
    finals: list[str] = []
    failures: list[BaseException] = []

    def upload(client: UploadClient) -> None:
        start.wait()
        try:
            finals.append(_send(client, entry, data, whole, refusals))
        except BaseException as exc:  # reported below, with the segment
            failures.append(exc)

    threads = [threading.Thread(target=upload, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, (entry.seq, failures)
    return finals


def test_the_same_segment_uploaded_through_two_hosts_at_once_is_stored_once_and_plays_on_both(
    hosts: list[str], server_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    identity = registered_device(server_sessions, "DEV-2H")
    segments = signed_segments(identity, 6, SEGMENT_BYTES)
    clients = [UploadClient(url, identity) for url in hosts]
    refusals: list[int] = []
    for entry, data in segments:
        whole = entry.seq % 2 == 1  # odd: one request per segment; even: announce, then chunks
        finals = _race(clients, entry, data, whole, refusals)
        assert finals == ["stored", "stored"], (entry.seq, finals, refusals)
    assert set(refusals) <= {409}, refusals
    with server_sessions() as session:
        rows = session.scalars(select(VideoSegment).order_by(VideoSegment.seq)).all()
        assert [(r.seq, r.state) for r in rows] == [(e.seq, "stored") for e, _ in segments]
        assert all(r.linked_prev for r in rows)
    with server_sessions() as session, session.begin():
        add_supervisor(session, "rita", "Rita Review", "correct horse battery", datetime.now(UTC))
    with httpx.Client(timeout=30) as browser:
        page = browser.get(f"{hosts[0]}/review/login")
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        login = {"csrf": token, "login": "rita", "password": "correct horse battery"}
        assert browser.post(f"{hosts[0]}/review/login", data=login).status_code == 303
        for n, (entry, data) in enumerate(segments):
            host = hosts[n % 2]  # logged in on the first host, played through both
            played = browser.get(f"{host}/api/video/segments/{identity.device_id}/{entry.seq}/content")
            assert played.status_code == 200 and played.content == data, (host, entry.seq)
        part = browser.get(
            f"{hosts[1]}/api/video/segments/{identity.device_id}/2/content", headers={"Range": "bytes=10-19"}
        )
        assert part.status_code == 206 and part.content == segments[1][1][10:20]
