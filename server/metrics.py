"""The server's Prometheus metrics, in a registry of each app's own (``app.state.metrics``).

Two kinds. Events this process saw are counters and histograms that its parts move as they work: ingest
(``server.ingest.metrics``), uploads, receipt checks. Facts that every host shares are read from the database
at each scrape (``DatabaseFacts``): dead letters, records pending per device stream, storage used, the last
fines run. And until when each jurisdiction's fine unit is known (``FineUnitCoverage``): the KZ MRP is set each
year by the budget law, and without next year's value no stop can be opened from 1 January. Every metric is
listed in the README's metrics table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.fines import FineError, available_jurisdictions, load_jurisdiction
from server.db.fines import FineRun
from server.db.sync import SyncDeadLetter, SyncStream
from server.db.video import VideoSegment
from server.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)
MAX_PENDING_STREAMS = 1000  # the streams furthest behind; the rest are summed in the total


class ServerMetrics:
    """Every metric of one server app; ``registry`` is what ``/metrics`` serves."""

    def __init__(self, sessions: sessionmaker[Session], free_bytes: Callable[[], int | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ingest = IngestMetrics(self.registry)
        self.upload_bytes = Counter(
            "patrolkit_video_upload_bytes",
            "Segment bytes accepted by this host (appended and verified)",
            registry=self.registry,
        )
        self.segments_stored = Counter(
            "patrolkit_video_segments_stored",
            "Segments this host committed to the store",
            registry=self.registry,
        )
        self.receipt_verifications = Counter(
            "patrolkit_receipt_verifications",
            "Receipt checks by verdict",
            ["verdict"],
            registry=self.registry,
        )
        self.registry.register(DatabaseFacts(sessions, free_bytes))
        self.registry.register(FineUnitCoverage())


class FineUnitCoverage(Collector):
    """Per jurisdiction whose fines are counted in a fine unit (MRP): the start of the first year, from this
    one on, with no unit value in its dataset (Unix time, UTC). Alert well before it comes."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._known: dict[str, set[int]] | None = None  # per jurisdiction, the years with a unit value

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "patrolkit_fines_unit_known_until_seconds",
            "Start of the first year with no fine unit (MRP) value in the jurisdiction's dataset (Unix time)",
            labels=["jurisdiction"],
        )
        for code, known in self._known_years().items():
            year = self._now().year
            while year in known:
                year += 1
            family.add_metric([code], datetime(year, 1, 1, tzinfo=UTC).timestamp())
        yield family

    def _known_years(self) -> dict[str, set[int]]:
        """The packaged datasets, read at the first scrape (they do not change while the process runs)."""
        if self._known is None:
            self._known = {}
            for code in available_jurisdictions():
                try:
                    jurisdiction = load_jurisdiction(code)
                except FineError as exc:  # a broken dataset fails its own checks; a scrape reports the rest
                    log.warning("metrics.dataset_failed", extra={"event": "metrics.dataset_failed", "error": str(exc)})
                    continue
                if jurisdiction.fine_unit == "mrp":
                    self._known[jurisdiction.code] = {rate.year for rate in jurisdiction.mrp}
        return self._known


class DatabaseFacts(Collector):
    """Gauges read from the database (and the video store) at each scrape: the same on every host."""

    def __init__(self, sessions: sessionmaker[Session], free_bytes: Callable[[], int | None]) -> None:
        self._sessions = sessions
        self._free_bytes = free_bytes

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: nothing to collect at registration

    def collect(self) -> Iterator[Metric]:
        try:
            with self._sessions() as session:
                yield from self._dead_letters(session)
                yield from self._pending(session)
                yield from self._storage(session)
                yield from self._fines_run(session)
        except Exception as exc:  # a scrape reports what it can: the database being down is visible elsewhere
            log.warning(
                "metrics.database_failed", extra={"event": "metrics.database_failed", "error": str(exc)}
            )
        free = self._free_bytes()
        if free is not None:
            yield GaugeMetricFamily("patrolkit_video_store_free_bytes", "Free bytes in the video store", free)

    @staticmethod
    def _dead_letters(session: Session) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "patrolkit_ingest_dead_letters",
            "Dead-lettered messages and records kept, by reason",
            labels=["reason"],
        )
        rows = session.execute(select(SyncDeadLetter.reason, func.count()).group_by(SyncDeadLetter.reason))
        for reason, count in rows:
            family.add_metric([reason], count)
        yield family

    @staticmethod
    def _pending(session: Session) -> Iterator[Metric]:
        behind = SyncStream.max_seq - SyncStream.hwm
        per_stream = GaugeMetricFamily(
            "patrolkit_ingest_pending_records",
            "Records a device stream has sent past a gap that the server still waits for (max seq - high-water"
            " mark), for the streams furthest behind",
            labels=["device", "epoch"],
        )
        rows = session.execute(
            select(SyncStream.device_id, SyncStream.epoch, behind)
            .where(behind > 0)
            .order_by(behind.desc())
            .limit(MAX_PENDING_STREAMS)
        )
        for device_id, epoch, count in rows:
            per_stream.add_metric([device_id, epoch], count)
        yield per_stream
        total = session.scalar(select(func.coalesce(func.sum(behind), 0)).where(behind > 0)) or 0
        yield GaugeMetricFamily(
            "patrolkit_ingest_pending_records_all", "Records pending over every device stream", total
        )

    @staticmethod
    def _storage(session: Session) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "patrolkit_video_storage_bytes", "Bytes of footage held, by segment state", labels=["state"]
        )
        segments = GaugeMetricFamily("patrolkit_video_segments", "Segments held, by state", labels=["state"])
        rows = session.execute(
            select(VideoSegment.state, func.coalesce(func.sum(VideoSegment.size), 0), func.count()).group_by(
                VideoSegment.state
            )
        )
        for state, total, count in rows:
            size.add_metric([state], total)
            segments.add_metric([state], count)
        yield size
        yield segments

    @staticmethod
    def _fines_run(session: Session) -> Iterator[Metric]:
        last = session.scalar(select(FineRun).order_by(FineRun.started_at.desc(), FineRun.id.desc()).limit(1))
        runs = GaugeMetricFamily(
            "patrolkit_fines_runs", "Daily fines runs recorded, by status", labels=["status"]
        )
        for status, count in session.execute(select(FineRun.status, func.count()).group_by(FineRun.status)):
            runs.add_metric([status], count)
        yield runs
        if last is None:
            return
        yield GaugeMetricFamily(
            "patrolkit_fines_last_run_started_seconds",
            "When the last daily fines run started (Unix time)",
            last.started_at.timestamp(),
        )
        finished = last.finished_at or datetime.now(UTC)
        yield GaugeMetricFamily(
            "patrolkit_fines_last_run_duration_seconds",
            "How long the last daily fines run took (so far, while it runs)",
            max(0.0, (finished - last.started_at).total_seconds()),
        )
        outcome = GaugeMetricFamily(
            "patrolkit_fines_last_run", "The last daily fines run: 1 for its status", labels=["status", "day"]
        )
        outcome.add_metric([last.status, last.run_on.isoformat()], 1)
        yield outcome
        for name, value, text in (
            ("fines", last.fines, "Fines the last daily run moved on"),
            ("happenings", last.happenings, "Happenings (notices, reminders, hand-overs) the last run made"),
            ("errors", last.errors, "Fines the last daily run could not move on"),
        ):
            yield GaugeMetricFamily(f"patrolkit_fines_last_run_{name}", text, value)
