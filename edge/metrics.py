"""The device's Prometheus metrics (``/metrics`` of the device's HTTP interface), read at each scrape: the
outbox (``edge.sync.outbox``), the sync sender, the recorder's status file, the uploads (``edge.upload``) and
the battery (``hardware.power``). One registry per app. Every metric is listed in the README's metrics table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from core.manifest import ManifestError, parse_utc
from edge.recorder.recorder import read_status
from edge.sync.outbox import stats
from edge.sync.sender import SyncSender
from edge.upload.uploader import upload_progress
from hardware.power import read_power_state

log = logging.getLogger(__name__)


def device_registry(
    sessions: sessionmaker[Session],
    recording_dir: Path,
    power_root: Path,
    sender: SyncSender | None,
    now: Callable[[], datetime],
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeviceFacts(sessions, recording_dir, power_root, sender, now))
    return registry


class DeviceFacts(Collector):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        recording_dir: Path,
        power_root: Path,
        sender: SyncSender | None,
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._recording_dir = recording_dir
        self._power_root = power_root
        self._sender = sender
        self._now = now

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._database()
        except Exception as exc:  # a scrape reports what it can; /healthz reports the database
            log.warning(
                "metrics.database_failed", extra={"event": "metrics.database_failed", "error": str(exc)}
            )
        yield from self._sync()
        yield from self._recorder()
        yield from self._battery()

    def _database(self) -> Iterator[Metric]:
        with self._sessions() as session:
            outbox = stats(session)
            upload = upload_progress(session)
        records = GaugeMetricFamily(
            "patrolkit_device_outbox_records", "Outbox records by state", labels=["state"]
        )
        for state, count in (
            ("pending", outbox.pending),
            ("acked", outbox.acked),
            ("rejected", outbox.rejected),
        ):
            records.add_metric([state], count)
        yield records
        oldest = outbox.oldest_pending_at
        yield GaugeMetricFamily(
            "patrolkit_device_outbox_oldest_pending_age_seconds",
            "Age of the oldest record not yet acked by the server (0 when none waits)",
            0.0 if oldest is None else max(0.0, (self._now() - oldest).total_seconds()),
        )
        yield GaugeMetricFamily(
            "patrolkit_device_outbox_last_seq", "Highest outbox sequence number", outbox.max_seq
        )
        segments = GaugeMetricFamily(
            "patrolkit_device_upload_segments", "Recorded segments by upload state", labels=["state"]
        )
        segments.add_metric(["pending"], upload.pending_segments)
        segments.add_metric(["confirmed"], upload.confirmed_segments)
        segments.add_metric(["rejected"], upload.rejected_segments)
        yield segments
        size = GaugeMetricFamily(
            "patrolkit_device_upload_bytes",
            "Segment bytes: pending (not confirmed), sent (of pending ones, on the server), confirmed",
            labels=["state"],
        )
        size.add_metric(["pending"], upload.pending_bytes)
        size.add_metric(["sent"], upload.sent_bytes)
        size.add_metric(["confirmed"], upload.confirmed_bytes)
        yield size

    def _sync(self) -> Iterator[Metric]:
        if self._sender is None:
            return
        health = self._sender.health()
        yield GaugeMetricFamily(
            "patrolkit_device_sync_online", "1 while connected to the broker", bool(health["online"])
        )
        yield GaugeMetricFamily(
            "patrolkit_device_sync_inflight", "Records sent and not yet acked", float(str(health["inflight"]))
        )
        yield CounterMetricFamily(
            "patrolkit_device_sync_acked",
            "Records acked since the process started",
            float(str(health["acked"])),
        )
        yield CounterMetricFamily(
            "patrolkit_device_sync_resends",
            "Records sent again since the process started",
            float(str(health["resends"])),
        )

    def _recorder(self) -> Iterator[Metric]:
        status = read_status(self._recording_dir)
        state = str(status.get("state")) if status else "unknown"
        recording = GaugeMetricFamily(
            "patrolkit_device_recorder_state", "1 for the recorder's state", labels=["state"]
        )
        recording.add_metric([state[:32]], 1)
        yield recording
        if not status:
            return
        updated = status.get("updated_utc")
        try:
            at = parse_utc(updated, "updated_utc") if isinstance(updated, str) else None
        except ManifestError:
            at = None
        if at is not None:
            yield GaugeMetricFamily(
                "patrolkit_device_recorder_status_age_seconds",
                "Seconds since the recorder last wrote its status (a stuck recorder stops writing it)",
                max(0.0, (self._now() - at).total_seconds()),
            )
        for key, name, kind, text in (
            ("frames_total", "frames", CounterMetricFamily, "Frames recorded since the recorder started"),
            (
                "frames_dropped",
                "frames_dropped",
                CounterMetricFamily,
                "Frames the camera gave that were dropped",
            ),
            ("last_closed_seq", "last_closed_seq", GaugeMetricFamily, "Number of the last closed segment"),
            ("free_bytes", "free_bytes", GaugeMetricFamily, "Free bytes on the recordings volume"),
            ("hours_left", "hours_left", GaugeMetricFamily, "Hours of recording the free space holds"),
            ("storage_low", "storage_low", GaugeMetricFamily, "1 when the recordings volume runs low"),
        ):
            value = status.get(key)
            if isinstance(value, bool | int | float):
                yield kind(f"patrolkit_device_recorder_{name}", text, float(value))

    def _battery(self) -> Iterator[Metric]:
        power = read_power_state(self._power_root)
        yield GaugeMetricFamily("patrolkit_device_on_charger", "1 while on external power", power.on_charger)
        if power.battery_percent is not None:
            yield GaugeMetricFamily(
                "patrolkit_device_battery_percent", "Battery charge in percent", power.battery_percent
            )
