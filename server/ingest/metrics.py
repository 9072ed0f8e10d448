"""What the ingest workers of a process count: records by outcome, messages, the time from a message's
arrival to its acknowledgement, dead letters, the messages waiting, and their admission's credit. The workers call ``batch_done`` and
``dead_lettered``; ``waiting`` is read at each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from server.ingest.admission import Admission

# Seconds from a message's arrival at a worker to its ack on the broker: a batch usually takes milliseconds;
# the top buckets catch a worker that waits for the database.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry, ack_buckets: tuple[float, ...] = ACK_BUCKETS) -> None:
        self.records = Counter(
            "patrolkit_ingest_records",
            "Records ingested by this process, by outcome (accepted, duplicate, conflict, dead_letter)",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("accepted", "duplicate", "conflict", "dead_letter"):
            self.records.labels(outcome)  # every outcome's series exists from the start, at 0
        self.messages = Counter(
            "patrolkit_ingest_messages",
            "MQTT messages handled (committed or dead-lettered)",
            registry=registry,
        )
        self.ack_latency = Histogram(
            "patrolkit_ingest_ack_latency_seconds",
            "Time from a message's arrival at an ingest worker to its signed ack being published",
            buckets=ack_buckets,
            registry=registry,
        )
        self.dead_letters = Counter(
            "patrolkit_ingest_dead_lettered",
            "Messages and records this process dead-lettered",
            registry=registry,
        )
        self.waiting = Gauge(
            "patrolkit_ingest_waiting_messages",
            "Messages received by this process's workers and not yet handled",
            registry=registry,
        )
        self._waiting_sources: list[Callable[[], int]] = []
        self.waiting.set_function(lambda: float(sum(source() for source in self._waiting_sources)))
        self._admissions: list[Admission] = []
        Gauge(
            "patrolkit_ingest_credit_waiting_devices",
            "Devices whose credit ask waits for room in this process's workers' budgets",
            registry=registry,
        ).set_function(lambda: float(sum(a.waiting for a in self._admissions)))
        Gauge(
            "patrolkit_ingest_credit_outstanding_records",
            "Records this process's workers granted to devices and have not yet seen committed (nor lapsed)",
            registry=registry,
        ).set_function(lambda: float(sum(a.outstanding for a in self._admissions)))

    def watch(self, pending: Callable[[], int]) -> None:
        """Count ``pending()`` (a worker's messages not yet handled) in the waiting gauge."""
        self._waiting_sources.append(pending)

    def watch_admission(self, admission: Admission) -> None:
        """Count a worker's admission in the credit gauges."""
        self._admissions.append(admission)

    def batch_done(
        self, arrivals: Iterable[float], now: float, accepted: int, duplicates: int, conflicts: int, dead: int
    ) -> None:
        """A batch committed and its acks published: ``arrivals`` are its messages' arrival times."""
        count = 0
        for arrived in arrivals:
            self.ack_latency.observe(max(0.0, now - arrived))
            count += 1
        self.messages.inc(count)
        for outcome, n in (
            ("accepted", accepted),
            ("duplicate", duplicates),
            ("conflict", conflicts),
            ("dead_letter", dead),
        ):
            if n:
                self.records.labels(outcome).inc(n)
        if dead:
            self.dead_letters.inc(dead)

    def dead_lettered(self) -> None:
        """A whole message dead-lettered by the worker (it could not be handled)."""
        self.dead_letters.inc()
