"""The fleet view: one row per device from what the devices already sync, with last seen, outbox lag, storage
hours left at the device's own bitrate, battery, upload backlog, recorder gaps in 24 h, dataset versions and
clock drift, and what needs attention first."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from server.db.devices import Device
from server.db.sync import DeviceStatus, RecordingGap
from server.review.fleet import FleetRow, Severity, assess, fleet_rows, sort_rows

from .conftest import DEVICE, Workspace


def _status(ws: Workspace, device_id: str, measured: datetime, received: datetime, **body: object) -> None:
    values = {"battery_pct": 80, "charging": False, "storage_free_bytes": 50 * 10**9, "storage_total_bytes": 64 * 10**9,
              "outbox_pending": 0, "outbox_oldest_age_s": None, "recorder_state": "recording",
              "app_version": "patrolkit 0.1.0", "dataset_versions": {"tariffs": 7}, "measured_at": measured.isoformat(),
              **body}  # fmt: skip
    with ws.sessions() as session, session.begin():
        if session.get(Device, device_id) is None:
            session.add(Device(device_id=device_id, kid=f"k-{device_id}", public_key_b64="A" * 43 + "=",
                               mqtt_username=device_id.lower(), created_at=measured))  # fmt: skip
        session.add(DeviceStatus(device_id=device_id, epoch="e", seq=1, body=json.dumps(values), measured_at=measured,
                                 received_at=received))  # fmt: skip


def test_rows_show_each_measure_and_what_needs_attention_comes_first(ws: Workspace) -> None:
    now = ws.clock.now()
    _status(ws, DEVICE, now - timedelta(minutes=2), now - timedelta(minutes=2), storage_free_bytes=4 * 10**6,
            outbox_pending=12, outbox_oldest_age_s=7200.0)  # fmt: skip
    _status(ws, "DEV-B-LOWBAT", now - timedelta(hours=5), now - timedelta(hours=5), battery_pct=9)
    _status(ws, "DEV-C-DRIFT", now + timedelta(seconds=118), now - timedelta(seconds=2))
    _status(ws, "DEV-D-FINE", now - timedelta(minutes=1), now - timedelta(minutes=1))
    with ws.sessions() as session, session.begin():
        session.add(Device(device_id="DEV-E-NEVER", kid="k-e", public_key_b64="A" * 43 + "=", mqtt_username="e",
                           created_at=now))  # fmt: skip
        session.add(RecordingGap(gap_id="g-c", record_id="r-c", device_id="DEV-C-DRIFT", recording_id=None,
                                 started_at=now - timedelta(hours=3), ended_at=now - timedelta(hours=3) + timedelta(seconds=40),
                                 reason="camera_error"))  # fmt: skip
    with ws.sessions() as session:
        rows = {r.device_id: r for r in fleet_rows(session, now)}
        order = [r.device_id for r in fleet_rows(session, now)]
    mine = rows[DEVICE]
    assert mine.bytes_per_hour is not None and mine.storage_hours_left is not None
    assert mine.storage_hours_left == mine.storage_free_bytes / mine.bytes_per_hour < 2, "4 MB at the device's bitrate"
    assert mine.recorded_hours == pytest.approx(10 / 3600, rel=1e-3) == mine.uploaded_hours, "five 2-s segments, all uploaded"
    assert rows["DEV-C-DRIFT"].drift_s == 120.0 and rows["DEV-C-DRIFT"].gaps_24h == 1
    assert rows["DEV-C-DRIFT"].gap_seconds_24h == pytest.approx(40.0, abs=0.01)
    assert rows["DEV-B-LOWBAT"].severity is Severity.HIGH and rows["DEV-E-NEVER"].severity is Severity.HIGH
    assert rows["DEV-D-FINE"].problems == [] and rows["DEV-D-FINE"].datasets == {"tariffs": 7}
    assert order[-1] == "DEV-D-FINE" and order.index("DEV-C-DRIFT") > max(order.index(d) for d in ("DEV-B-LOWBAT", DEVICE))
    assert ws.login("adam") == 303
    page = ws.client.get("/review/fleet").text
    shown = re.findall(r'<tr class="device attention-(\w+)" data-device="([^"]+)"', page)
    assert shown == [(("high" if rows[d].severity is Severity.HIGH else "medium" if rows[d].severity else "ok"), d)
                     for d in order]  # fmt: skip
    for words in ("battery low", "clock drift", "storage for", "outbox lag", "never seen", "recording gaps in 24 h"):
        assert words in page, words
    assert "+120.0 с / s" in page


def test_assessment_rules() -> None:
    now = datetime(2026, 3, 2, 12, 0).astimezone()
    ok = FleetRow("A", "", True, last_seen=now, battery_pct=50, recorder_state="recording")
    assert assess(ok, now) == []
    charging = FleetRow("B", "", True, last_seen=now, battery_pct=5, charging=True, recorder_state="recording")
    assert assess(charging, now) == [], "a low battery on the charger is not a problem"
    stopped = FleetRow("C", "", True, last_seen=now, recorder_state="disk_full")
    assert [p.severity for p in assess(stopped, now)] == [Severity.HIGH]
    off = FleetRow("D", "", False)
    assert [p.words for p in assess(off, now)] == ["отключено / deactivated"]
    never = FleetRow("E", "", True)
    for row in (ok, stopped, never):
        row.problems = assess(row, now)
    assert [r.device_id for r in sort_rows([ok, stopped, never])] == ["E", "C", "A"], "the longest unseen first"
