"""Where the offence happened: a protocol takes its lat/lon from the recorder's latest GPS fix only when that fix
is fresh (30 s by default, configurable); a stale fix or none leaves them empty, and a typed position wins."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.signing import new_private_key
from edge.cli import main as edge_cli
from edge.db.base import make_engine, make_sessionmaker, transaction
from edge.db.protocols import Protocol
from edge.recorder.position import GpsReading, PublishedFix
from edge.recorder.recorder import Recorder, RecorderSettings
from edge.recorder.signer import SegmentSigner
from edge.stops import StopDetails, StopError, add_officer, open_protocol
from edge.sync.outbox import OutboxContent, OutboxRecord
from hardware.camera import CaptureFormat
from simulators.camera import SyntheticScene

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(device_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(device_sessions) as s:
        add_officer(s, "B-7", "Сейтқали Ержан", "ДПС")
    return device_sessions


def fix_read(seconds_ago: float) -> PublishedFix:
    return PublishedFix(43.2389, 76.8897, NOW - timedelta(seconds=seconds_ago - 1), 1, 9,
                        NOW - timedelta(seconds=seconds_ago))  # fmt: skip


def open_(sessions: sessionmaker[Session], fix: PublishedFix | None, **kw: object) -> Protocol:
    position = {k: kw.pop(k) for k in ("lat", "lon") if k in kw}
    return open_protocol(
        sessions,
        StopDetails("ERAP-0001", "592.1", "Жанболатов Арман", "850101300124", "123abc01", "B-7", **position),  # type: ignore[arg-type]
        device_id="DEV-1",
        jurisdiction="KZ",
        timezone="Asia/Almaty",
        holidays=[],
        clock=FakeClock(NOW),
        gps_fix=fix,
        **kw,  # type: ignore[arg-type]
    )


def queued_position(sessions: sessionmaker[Session]) -> tuple[object, object]:
    with sessions() as s:
        body = json.loads(
            s.scalars(
                select(OutboxContent.body).join_from(OutboxRecord, OutboxContent, OutboxContent.seq == OutboxRecord.seq).where(OutboxRecord.record_type == "protocol")
            ).one()
        )
    return body["lat"], body["lon"]


def test_a_fresh_fix_fills_the_protocol_and_its_record(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions, fix_read(29.9))
    assert (p.lat, p.lon) == (43.2389, 76.8897)
    assert queued_position(sessions) == (43.2389, 76.8897)


def test_a_stale_fix_leaves_the_position_empty(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions, fix_read(30.5))
    assert (p.lat, p.lon) == (None, None)
    assert queued_position(sessions) == (None, None)


def test_the_freshness_limit_is_configurable(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions, fix_read(45), gps_max_age=timedelta(seconds=60))
    assert (p.lat, p.lon) == (43.2389, 76.8897)


def test_no_fix_leaves_the_position_empty(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions, None)
    assert (p.lat, p.lon) == (None, None)
    assert queued_position(sessions) == (None, None)


def test_a_fix_read_in_the_future_is_not_trusted(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions, fix_read(-60))  # the device clock was set back after the fix was read
    assert (p.lat, p.lon) == (None, None)


def test_a_typed_position_wins_over_the_fix(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions, fix_read(1), lat=51.1694, lon=71.4491)
    assert (p.lat, p.lon) == (51.1694, 71.4491)


@pytest.mark.parametrize(
    ("lat", "lon", "words"),
    [(51.0, None, "both latitude and longitude"), (95.0, 71.0, "latitude 95.0"), (51.0, 181.0, "longitude")],
)
def test_a_bad_typed_position_is_refused_and_stores_nothing(
    sessions: sessionmaker[Session], lat: float | None, lon: float | None, words: str
) -> None:
    with pytest.raises(StopError, match=words):
        open_(sessions, fix_read(1), lat=lat, lon=lon)
    with sessions() as s:
        assert s.scalars(select(Protocol)).first() is None
        assert s.scalars(select(OutboxRecord)).first() is None


class _Frames:
    def __init__(self, stop: threading.Event) -> None:
        self.scene, self.n, self.stop = SyntheticScene(160, 120), 0, stop

    def __call__(self, source: str, fmt: CaptureFormat) -> _Frames:
        return self

    def read(self):  # type: ignore[no-untyped-def]
        self.n += 1
        if self.n >= 15:
            self.stop.set()
        return self.scene.frame(self.n)

    def close(self) -> None:
        pass


def _run_recorder(directory: Path, reading: GpsReading | None) -> None:
    stop = threading.Event()
    settings = RecorderSettings(directory, "fake", CaptureFormat(160, 120, 15), segment_seconds=1)
    Recorder(settings, SegmentSigner("DEV-1", new_private_key(), "k"), camera_factory=_Frames(stop),
             gps=lambda: reading).run(stop)  # fmt: skip


@pytest.mark.parametrize(
    ("age_s", "max_age", "expected"),
    [
        (0.2, 30, (43.2389, 76.8897)),
        (40.0, 30, (None, None)),
        (40.0, 60, (43.2389, 76.8897)),
        (None, 30, None),
    ],
)
def test_stop_open_command_reads_the_recorder_status(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    age_s: float | None,
    max_age: float,
    expected: tuple[float | None, float | None] | None,
) -> None:
    data = tmp_path / "device"
    reading = None if age_s is None else GpsReading(43.2389, 76.8897, None, 1, 7, age_s)
    _run_recorder(data / "video", reading)  # the recorder process writes its status file there
    config = tmp_path / "edge.toml"
    config.write_text(f'[device]\nid = "DEV-1"\ndata_dir = "{data}"\n\n[gps]\nstop_max_age_s = {max_age}\n')
    assert edge_cli(["--config", str(config), "officer", "add", "B-7", "Сейтқали Ержан"]) == 0
    code = edge_cli(["--config", str(config), "stop", "open", "ERAP-0009", "--article", "592.1",
                     "--driver-name", "Жанболатов Арман", "--iin", "850101300124", "--plate", "123abc01",
                     "--officer", "B-7"])  # fmt: skip
    assert code == 0
    engine = make_engine(f"sqlite:///{data / 'device.db'}")
    try:
        with make_sessionmaker(engine)() as s:
            p = s.scalars(select(Protocol)).one()
            position = (p.lat, p.lon)
    finally:
        engine.dispose()
    out = capsys.readouterr().out
    if expected is None or expected == (None, None):
        assert position == (None, None) and "position: not known" in out
    else:
        assert position == expected and "position: 43.23890, 76.88970" in out
