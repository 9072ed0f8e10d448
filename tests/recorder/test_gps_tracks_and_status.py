"""GPS in the recorder: every closed segment's signed manifest entry and its ``segment`` outbox record carry the
position at its first and last frame and its seconds with a fix; the status file carries the latest fix and
when it was read (a stale fix is published with its true time, never shown as current)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.manifest import SegmentGps, check_chain
from core.signing import new_private_key
from edge.recorder.index import DatabaseIndex
from edge.recorder.journal import Journal
from edge.recorder.position import (
    GpsReading,
    GpsSource,
    SegmentTrack,
    fresh_fix,
    published_fix,
    receiver_source,
)
from edge.recorder.recorder import Recorder, RecorderSettings, read_status
from edge.recorder.signer import SegmentSigner
from edge.sync.outbox import OutboxContent, OutboxRecord
from hardware.camera import CaptureFormat
from hardware.gps import GpsReceiver
from simulators.camera import SyntheticScene
from simulators.gps import GpsSimulator, Track

KEY = new_private_key()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FPS = 15


class _Frames:
    """A camera that hands out synthetic frames and stops the recorder after ``limit`` reads."""

    def __init__(self, stop: threading.Event, limit: int) -> None:
        self.scene = SyntheticScene(160, 120)
        self.n = 0
        self.stop, self.limit = stop, limit

    def __call__(self, source: str, fmt: CaptureFormat) -> _Frames:
        return self

    def read(self):  # type: ignore[no-untyped-def]
        self.n += 1
        if self.n >= self.limit:
            self.stop.set()
        return self.scene.frame(self.n)

    def close(self) -> None:
        pass


def _record(
    directory: Path,
    gps: GpsSource,
    frames: int = 75,
    index: DatabaseIndex | None = None,
    clock: FakeClock | None = None,
) -> Recorder:
    stop = threading.Event()
    settings = RecorderSettings(directory, "fake", CaptureFormat(160, 120, FPS), segment_seconds=2)
    camera = _Frames(stop, frames)
    signer = SegmentSigner("DEV-1", KEY, "k")
    recorder = Recorder(settings, signer, index=index, clock=clock, camera_factory=camera, gps=gps)
    recorder.run(stop)
    return recorder


def test_segment_track_counts_seconds_with_a_fix_and_keeps_first_and_last_position() -> None:
    p, q = (43.1, 76.1), (43.2, 76.2)
    track = SegmentTrack(fps=3)
    for position in [None, None, None, p, None, None, None, None, q, None]:
        track.add(position)
    assert track.summary(10) == SegmentGps(None, None, None, None, 2, 4)  # seconds 1 and 2 had a fix
    assert track.summary(9) == SegmentGps(None, None, 43.2, 76.2, 2, 3)  # a repaired file kept 9 frames
    assert track.summary(12) == SegmentGps(None, None, None, None, 2, 4)  # frames never seen have no fix
    full = SegmentTrack(fps=3)
    for _ in range(6):
        full.add(p)
    assert full.summary(6) == SegmentGps(43.1, 76.1, 43.1, 76.1, 2, 2)
    assert full.summary(6).fix_fraction == 1.0


def test_a_current_fix_reaches_every_manifest_entry_its_outbox_record_and_the_status(
    tmp_path: Path, device_sessions: sessionmaker[Session]
) -> None:
    clock = FakeClock(T0)
    fix_utc = T0 - timedelta(seconds=1)
    reading = GpsReading(43.238912345, 76.889712345, fix_utc, quality=1, satellites=9, age_s=0.5)
    index = DatabaseIndex(device_sessions, "DEV-1", clock)
    _record(tmp_path, lambda: reading, index=index, clock=clock)
    entries = Journal(tmp_path).entries()
    assert [e.frames for e in entries] == [30, 30, 15]
    with device_sessions() as session:  # queued at the recorder's clock, never the wall clock
        queued_at = session.scalars(select(OutboxRecord.created_at)).all()
    assert queued_at and all(T0 <= at <= clock.now() for at in queued_at)
    assert check_chain(entries, KEY.public_key()) == 3, "the GPS track is inside the signed entry"
    for entry in entries:
        seconds = -(-entry.frames // FPS)
        assert entry.gps == SegmentGps(43.2389123, 76.8897123, 43.2389123, 76.8897123, seconds, seconds)
    with device_sessions() as session:
        bodies = [
            json.loads(b)
            for b in session.scalars(
                select(OutboxContent.body)
                .join_from(OutboxRecord, OutboxContent, OutboxContent.seq == OutboxRecord.seq)
                .where(OutboxRecord.record_type == "segment")
                .order_by(OutboxRecord.seq)
            )
        ]
    assert [(b["start_lat"], b["end_lon"], b["gps_fix_seconds"], b["gps_seconds"]) for b in bodies] == [
        (43.2389123, 76.8897123, 2, 2),
        (43.2389123, 76.8897123, 2, 2),
        (43.2389123, 76.8897123, 1, 1),
    ]
    status = read_status(tmp_path)
    assert status is not None and status["gps_fix"] == {
        "lat": 43.2389123,
        "lon": 76.8897123,
        "fix_utc": "2026-03-02T08:59:59.000Z",
        "quality": 1,
        "satellites": 9,
        "read_utc": "2026-03-02T08:59:59.500Z",
    }
    published = published_fix(status)
    assert published is not None and published.read_at == T0 - timedelta(seconds=0.5)
    assert published.satellites == 9 and published.fix_utc == fix_utc


def test_a_stale_fix_is_no_position_in_the_segments_but_is_published_with_its_age(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    reading = GpsReading(43.2, 76.9, None, quality=None, satellites=None, age_s=12.0)
    _record(tmp_path, lambda: reading, clock=clock)
    for entry in Journal(tmp_path).entries():
        assert entry.gps is not None
        assert (entry.gps.start_lat, entry.gps.end_lat, entry.gps.fix_seconds) == (None, None, 0)
        assert entry.gps.seconds == -(-entry.frames // FPS)
    published = published_fix(read_status(tmp_path))
    assert published is not None and published.read_at == T0 - timedelta(seconds=12)
    assert published.fix_utc is None and published.quality is None
    assert fresh_fix(published, T0, timedelta(seconds=30)) == published
    assert fresh_fix(published, T0, timedelta(seconds=10)) is None


def test_without_a_receiver_segments_say_no_fix_and_the_status_has_none(tmp_path: Path) -> None:
    _record(tmp_path, lambda: None, frames=30)
    [entry] = Journal(tmp_path).entries()
    assert entry.gps == SegmentGps(None, None, None, None, 0, 2)
    status = read_status(tmp_path)
    assert status is not None and status["gps_fix"] is None and published_fix(status) is None


@pytest.mark.parametrize(
    "gps_fix",
    [
        {
            "lat": 91.0,
            "lon": 0.0,
            "fix_utc": None,
            "quality": 1,
            "satellites": 4,
            "read_utc": "2026-03-02T09:00:00.000Z",
        },
        {"lat": 1.0, "lon": 2.0, "fix_utc": None, "quality": 1, "satellites": 4, "read_utc": "yesterday"},
        {"lat": "1", "lon": 2.0, "read_utc": "2026-03-02T09:00:00.000Z"},
        "43.2,76.9",
    ],
)
def test_a_malformed_published_fix_is_no_fix(gps_fix: object) -> None:
    assert published_fix({"gps_fix": gps_fix}) is None


@pytest.mark.timeout(60)
def test_the_simulated_receiver_on_a_pty_reaches_the_status_file_and_the_segments(tmp_path: Path) -> None:
    sim = GpsSimulator(Track(43.2389, 76.8897), interval=0.05, link=tmp_path / "gps").start()
    receiver = GpsReceiver(str(tmp_path / "gps")).start()
    try:
        deadline = time.monotonic() + 10
        while receiver.fix() is None or receiver.fix().quality is None:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no fix came over the pty"
            time.sleep(0.02)
        video = tmp_path / "video"
        _record(video, receiver_source(receiver), frames=30)
    finally:
        receiver.stop()
        sim.stop()
    status = read_status(video)
    published = published_fix(status)
    assert published is not None, status
    assert published.latitude == pytest.approx(43.2389, abs=0.01)
    assert published.longitude == pytest.approx(76.8897, abs=0.01)
    assert (published.quality, published.satellites) == (1, 9)
    assert published.fix_utc is not None and abs(published.fix_utc - datetime.now(UTC)) < timedelta(
        seconds=10
    )
    assert fresh_fix(published, datetime.now(UTC), timedelta(seconds=30)) == published
    [entry] = Journal(video).entries()
    assert entry.gps is not None and entry.gps.fix_seconds == entry.gps.seconds == 2
    assert entry.gps.start_lat == pytest.approx(43.2389, abs=0.01)
    assert entry.gps.end_lon == pytest.approx(76.8897, abs=0.01)
