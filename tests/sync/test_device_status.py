"""The device-status producer: what it measures, how often, and that a broken source does not stop it."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import T0, protocol_body

from core.clock import FakeClock
from edge.sync.outbox import OutboxContent, OutboxRecord, enqueue
from edge.sync.status import DeviceStatusReporter, StatusSources, recorder_source, storage_source


def statuses(device: sessionmaker[Session]) -> list[dict[str, object]]:
    with device() as session:
        bodies = session.scalars(
            select(OutboxContent.body)
            .join_from(OutboxRecord, OutboxContent, OutboxContent.seq == OutboxRecord.seq)
            .where(OutboxRecord.record_type == "device_status")
            .order_by(OutboxRecord.seq)
        ).all()
    return [json.loads(b) for b in bodies]


def test_status_reports_every_interval_with_battery_storage_outbox_lag_recorder_and_versions(
    device_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    with device_sessions() as session, session.begin():
        enqueue(session, "protocol", protocol_body("S1"), now=T0)  # queued 10 minutes ago, not yet synced
    (tmp_path / "recorder.status.json").write_text(json.dumps({"state": "recording"}))
    sources = StatusSources(
        app_version="0.1.0",
        battery=lambda: (87, False),
        storage=storage_source(tmp_path),
        recorder_state=recorder_source(tmp_path),
    )
    reporter = DeviceStatusReporter(device_sessions, sources, interval_s=60, clock=clock)
    assert reporter.tick() is not None  # the first tick reports at once
    assert reporter.tick() is None
    clock.advance(59)
    assert reporter.tick() is None
    clock.advance(1)
    assert reporter.tick() is not None
    first, second = statuses(device_sessions)
    assert first["battery_pct"] == 87 and first["charging"] is False
    assert first["recorder_state"] == "recording" and first["app_version"] == "0.1.0"
    assert isinstance(first["storage_free_bytes"], int) and isinstance(first["storage_total_bytes"], int)
    assert 0 < first["storage_free_bytes"] <= first["storage_total_bytes"]
    assert first["outbox_pending"] == 1 and first["outbox_oldest_age_s"] == 600.0
    assert second["outbox_pending"] == 2  # the first status is itself waiting to be synced
    assert first["measured_at"] == "2026-03-02T09:10:00Z"
    assert first["dataset_versions"] == {}


def test_a_failing_or_missing_source_leaves_its_fields_empty_and_the_status_still_goes(
    device_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    def broken() -> tuple[int | None, bool | None]:
        raise OSError("battery gauge not responding")

    sources = StatusSources(app_version="0.1.0", battery=broken, recorder_state=recorder_source(tmp_path))
    DeviceStatusReporter(device_sessions, sources, interval_s=300, clock=FakeClock(T0)).report_once()
    (status,) = statuses(device_sessions)
    assert status["battery_pct"] is None and status["charging"] is None
    assert status["storage_free_bytes"] is None and status["recorder_state"] is None  # no status file yet
    assert status["outbox_pending"] == 0 and status["outbox_oldest_age_s"] is None


def test_interval_must_be_positive(device_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="interval"):
        DeviceStatusReporter(device_sessions, StatusSources(app_version="x"), interval_s=0)


def test_start_reports_in_the_background_and_stop_ends_it(device_sessions: sessionmaker[Session]) -> None:
    reporter = DeviceStatusReporter(
        device_sessions, StatusSources(app_version="0.1.0"), interval_s=3600
    ).start()
    try:
        for _ in range(200):
            if reporter.reports:
                break
            time.sleep(0.01)
    finally:
        reporter.stop()
    assert reporter.reports == 1 and len(statuses(device_sessions)) == 1
