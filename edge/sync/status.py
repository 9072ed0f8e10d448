"""The device-status producer: every ``interval_s`` it measures battery, storage, outbox lag, recorder state
and versions, and queues one ``device_status`` record in the outbox (the server keeps the latest).

Each measurement comes from a *source*, a plain callable the device process wires (``power_source``,
``storage_source``, ``recorder_source`` below make the usual ones). A source that fails or is missing leaves
its fields empty; the status is still sent, since a device that cannot read its battery is exactly the one a
supervisor wants to hear from. Time is injected: tests drive ``tick()`` with a ``FakeClock``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from core.sync.records import DeviceStatus
from edge.sync.datasets import active_versions
from edge.sync.outbox import enqueue, stats

log = logging.getLogger(__name__)
T = TypeVar("T")

BatterySource = Callable[[], tuple[int | None, bool | None]]  # (percent, charging)
StorageSource = Callable[[], tuple[int, int]]  # (free bytes, total bytes)
RecorderSource = Callable[[], str | None]  # e.g. "recording", "idle"; None = unknown


@dataclass(frozen=True)
class StatusSources:
    app_version: str
    battery: BatterySource | None = None
    storage: StorageSource | None = None
    recorder_state: RecorderSource | None = None


def power_source(root: Path) -> BatterySource:
    """Battery from the kernel's power-supply class (``/sys/class/power_supply``) via ``hardware.power``."""
    from hardware.power import read_power_state

    def read() -> tuple[int | None, bool | None]:
        state = read_power_state(root)
        return state.battery_percent, state.on_charger

    return read


def storage_source(path: Path) -> StorageSource:
    """Free and total bytes of the file system holding ``path`` (the recordings volume)."""

    def read() -> tuple[int, int]:
        usage = shutil.disk_usage(path)
        return usage.free, usage.total

    return read


def recorder_source(directory: Path) -> RecorderSource:
    """The ``state`` field of the recorder's status file in ``directory``; ``None`` if absent or unreadable."""
    from edge.recorder.recorder import read_status

    def read() -> str | None:
        status = read_status(directory)
        state = status.get("state") if status else None
        return str(state)[:32] if state is not None else None

    return read


class DeviceStatusReporter:
    """Queues a ``device_status`` record now and then every ``interval_s``; ``start()``/``stop()``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sources: StatusSources,
        interval_s: float = 300.0,
        clock: Clock | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"status interval must be positive, got {interval_s}")
        self._sessions = sessions
        self._sources = sources
        self.interval_s = interval_s
        self._clock = clock or SystemClock()
        self._last: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports = 0

    def report_once(self) -> int:
        """Measure and queue one status record in its own transaction; return its outbox seq."""
        power = self._read("battery", self._sources.battery)
        battery, charging = power if power is not None else (None, None)
        disk = self._read("storage", self._sources.storage)
        free, total = disk if disk is not None else (None, None)
        recorder = self._read("recorder_state", self._sources.recorder_state)
        now = self._clock.now()
        with self._sessions() as session, session.begin():
            outbox = stats(session)
            oldest = outbox.oldest_pending_at
            body = DeviceStatus(
                battery_pct=None if battery is None else max(0, min(100, int(battery))),
                charging=charging,
                storage_free_bytes=free,
                storage_total_bytes=total,
                outbox_pending=outbox.pending,
                outbox_oldest_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
                recorder_state=recorder,
                app_version=self._sources.app_version,
                dataset_versions=active_versions(session),
                measured_at=now,
            ).to_body()
            seq = enqueue(session, "device_status", body, now=now)
        self._last = self._clock.monotonic()
        self.reports += 1
        log_event(
            log, "sync.status_queued", seq=seq, pending=outbox.pending, battery=battery, recorder=recorder
        )
        return seq

    def _read(self, name: str, source: Callable[[], T] | None) -> T | None:
        if source is None:
            return None
        try:
            return source()
        except Exception as exc:  # a broken sensor must not stop the status report
            log_event(log, "sync.status_source_failed", source=name, error=str(exc)[:200])
            return None

    def tick(self) -> int | None:
        """Report if the interval has passed since the last report (or none was made yet)."""
        if self._last is not None and self._clock.monotonic() - self._last < self.interval_s:
            return None
        return self.report_once()

    def start(self) -> DeviceStatusReporter:
        self._thread = threading.Thread(target=self._run, name="device-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # e.g. the database is locked for long: try again next round
                log_event(log, "sync.status_failed", error=str(exc)[:300])
            self._stop.wait(min(self.interval_s, 1.0))
