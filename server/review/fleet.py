"""The fleet view: one row per device, from what the devices already sync (their latest ``device_status``
record, segment and gap records, uploads, dataset reports), worst first.

Per device: last seen (its latest status or sync message), outbox lag (records pending and the age of the
oldest, as of its status), storage hours left (free bytes at its bitrate over the last ``BACKLOG_DAYS`` days), battery, upload backlog
(hours recorded against hours uploaded, last ``BACKLOG_DAYS`` days), recorder gaps in the last 24 h,
dataset versions, and clock drift (the device's clock when it measured its status, against the server's
when it arrived: an upper bound of the drift when the status waited in the outbox).

``assess`` turns a row into problems with a severity; ``sort_rows`` puts what needs attention first.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, func, select
from sqlalchemy.orm import Session

from server.db.devices import Device
from server.db.sync import DeviceStatus, RecordingGap, SegmentMeta, SyncDeviceDataset, SyncStream
from server.db.video import VideoSegment

BACKLOG_DAYS = 7
STALE_AFTER = timedelta(hours=1)
LOW_BATTERY = 20
LOW_STORAGE_HOURS = 2.0
DRIFT_LIMIT_S = 30.0
OUTBOX_LAG_LIMIT = timedelta(hours=1)
BACKLOG_LIMIT_HOURS = 2.0


class Severity(enum.IntEnum):
    OK = 0
    MEDIUM = 1
    HIGH = 2


@dataclass(frozen=True)
class Problem:
    severity: Severity
    words: str


@dataclass
class FleetRow:
    device_id: str
    label: str
    active: bool
    last_seen: datetime | None = None
    battery_pct: int | None = None
    charging: bool | None = None
    outbox_pending: int | None = None
    outbox_oldest_age_s: float | None = None
    status_at: datetime | None = None
    storage_free_bytes: int | None = None
    bytes_per_hour: float | None = None
    recorded_hours: float = 0.0
    uploaded_hours: float = 0.0
    gaps_24h: int = 0
    gap_seconds_24h: float = 0.0
    datasets: dict[str, int] = field(default_factory=dict)
    drift_s: float | None = None
    recorder_state: str | None = None
    app_version: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def storage_hours_left(self) -> float | None:
        if self.storage_free_bytes is None or not self.bytes_per_hour:
            return None
        return self.storage_free_bytes / self.bytes_per_hour

    @property
    def backlog_hours(self) -> float:
        return max(0.0, self.recorded_hours - self.uploaded_hours)

    @property
    def severity(self) -> Severity:
        return max((p.severity for p in self.problems), default=Severity.OK)


def assess(row: FleetRow, now: datetime) -> list[Problem]:
    """What needs attention on one device, worst first."""
    out: list[Problem] = []
    if not row.active:
        return [Problem(Severity.OK, "отключено / deactivated")]
    if row.last_seen is None:
        out.append(Problem(Severity.HIGH, "ни разу не выходило на связь / never seen"))
    elif now - row.last_seen > STALE_AFTER:
        hours = (now - row.last_seen).total_seconds() / 3600
        out.append(Problem(Severity.HIGH, f"нет связи {hours:.1f} ч / not seen for {hours:.1f} h"))
    if row.battery_pct is not None and row.battery_pct < LOW_BATTERY and not row.charging:
        out.append(Problem(Severity.HIGH, f"батарея {row.battery_pct} % / battery low"))
    left = row.storage_hours_left
    if left is not None and left < LOW_STORAGE_HOURS:
        out.append(Problem(Severity.HIGH, f"места на {left:.1f} ч записи / storage for {left:.1f} h only"))
    if row.recorder_state is not None and row.recorder_state not in ("recording",):
        out.append(Problem(Severity.HIGH, f"регистратор: {row.recorder_state} / recorder not recording"))
    if row.gaps_24h:
        out.append(Problem(Severity.MEDIUM, f"перерывов записи за 24 ч: {row.gaps_24h} ({row.gap_seconds_24h:.0f} с) / "
                                            f"recording gaps in 24 h"))  # fmt: skip
    if row.drift_s is not None and abs(row.drift_s) > DRIFT_LIMIT_S:
        out.append(Problem(Severity.MEDIUM, f"часы расходятся на {row.drift_s:+.0f} с / clock drift"))
    if row.outbox_oldest_age_s is not None and row.outbox_oldest_age_s > OUTBOX_LAG_LIMIT.total_seconds():
        out.append(Problem(Severity.MEDIUM, f"очередь отправки: {row.outbox_pending} записей, старейшей "
                                            f"{row.outbox_oldest_age_s / 3600:.1f} ч / outbox lag"))  # fmt: skip
    if row.backlog_hours > BACKLOG_LIMIT_HOURS:
        out.append(Problem(Severity.MEDIUM, f"не загружено {row.backlog_hours:.1f} ч видео / upload backlog"))
    return sorted(out, key=lambda p: -p.severity)


def sort_rows(rows: Sequence[FleetRow]) -> list[FleetRow]:
    """Worst first: highest severity, then most problems, then longest unseen, then by device id."""
    def key(r: FleetRow) -> tuple[Any, ...]:
        unseen = r.last_seen.timestamp() if r.last_seen else float("-inf")
        return (-int(r.severity), -len(r.problems), unseen, r.device_id)

    return sorted(rows, key=key)


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start).cast(Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def fleet_rows(session: Session, now: datetime) -> list[FleetRow]:
    rows = {
        d.device_id: FleetRow(d.device_id, d.label, d.active)
        for d in session.scalars(select(Device).order_by(Device.device_id))
    }
    for status in session.scalars(select(DeviceStatus)):
        row = rows.get(status.device_id)
        if row is None:
            continue
        try:
            body = json.loads(status.body)
        except ValueError:
            body = {}
        row.battery_pct, row.charging = body.get("battery_pct"), body.get("charging")
        row.outbox_pending, row.outbox_oldest_age_s = body.get("outbox_pending"), body.get("outbox_oldest_age_s")
        row.storage_free_bytes, row.recorder_state = body.get("storage_free_bytes"), body.get("recorder_state")
        row.app_version = body.get("app_version")
        row.datasets.update({str(k): int(v) for k, v in (body.get("dataset_versions") or {}).items()})
        row.status_at = status.measured_at
        if status.received_at is not None:
            row.drift_s = (status.measured_at - status.received_at).total_seconds()
            row.last_seen = max(filter(None, (row.last_seen, status.received_at)))
    for device_id, seen in session.execute(select(SyncStream.device_id, func.max(SyncStream.updated_at)).group_by(SyncStream.device_id)):
        if device_id in rows and seen is not None:
            rows[device_id].last_seen = max(filter(None, (rows[device_id].last_seen, seen)))
    for d in session.scalars(select(SyncDeviceDataset)):
        if d.device_id in rows:
            rows[d.device_id].datasets.setdefault(d.dataset, d.version)
    since = now - timedelta(days=BACKLOG_DAYS)
    recorded = select(SegmentMeta.device_id, func.sum(_seconds(session, SegmentMeta.started_at, SegmentMeta.ended_at)),
                      func.sum(SegmentMeta.size_bytes)).where(SegmentMeta.started_at >= since).group_by(SegmentMeta.device_id)  # fmt: skip
    for device_id, seconds, size in session.execute(recorded):
        if device_id in rows:
            rows[device_id].recorded_hours = float(seconds or 0) / 3600
            if seconds:
                rows[device_id].bytes_per_hour = float(size or 0) / float(seconds) * 3600
    uploaded = select(VideoSegment.device_id, func.sum(_seconds(session, VideoSegment.started_at, VideoSegment.ended_at))).where(
        VideoSegment.started_at >= since, VideoSegment.state == "stored").group_by(VideoSegment.device_id)  # fmt: skip
    for device_id, seconds in session.execute(uploaded):
        if device_id in rows:
            rows[device_id].uploaded_hours = float(seconds or 0) / 3600
    gaps = select(RecordingGap.device_id, func.count(), func.sum(_seconds(session, RecordingGap.started_at, RecordingGap.ended_at))).where(
        RecordingGap.ended_at >= now - timedelta(hours=24)).group_by(RecordingGap.device_id)  # fmt: skip
    for device_id, count, seconds in session.execute(gaps):
        if device_id in rows:
            rows[device_id].gaps_24h, rows[device_id].gap_seconds_24h = int(count), float(seconds or 0)
    for row in rows.values():
        row.problems = assess(row, now)
    return sort_rows(list(rows.values()))
