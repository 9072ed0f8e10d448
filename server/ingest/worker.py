"""An ingest worker: one MQTT client on a (shared) subscription feeding batches into one DB transaction each.

Acks are published, and the MQTT messages acknowledged to the broker (paho ``manual_ack``), only after the
batch's COMMIT. Several workers (threads, processes or hosts) can run at once: with ``shared_group`` set they
split the load through ``$share/<group>/...`` (Mosquitto, EMQX, HiveMQ); without it (amqtt) each receives
everything and idempotent inserts make the extra copies harmless duplicates.

No message stops a worker. If a batch's transaction fails for any reason but a database that does not answer,
its messages are taken again one per transaction, and one that still fails alone (a database error: three
times, a second apart) is dead-lettered with the error and acknowledged to the broker, so that it is never
redelivered; the worker goes on with the next. While the database does not answer, nothing is acknowledged
(the device resends: acknowledging a message to the broker never frees a record on the device, only the
server's signed ack does). ``health()`` says whether the worker is up, connected and keeping up (no message
waiting longer than ``stall_s``); ``ensure_running()`` restarts its thread if it ended anyway, first taking the
messages it held one at a time and dead-lettering one it died on alone (``server.ingest.supervisor`` calls
both).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import random
import socket
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from core.sync.broker_url import parse_broker_url
from core.sync.control import TOPIC_ROOT, Credit, ack_body, ack_topic, ctl_topic, ref_topic, seal
from core.sync.envelope import sha256_hex
from core.sync.signing import DOMAIN_ACK, DOMAIN_CONTROL, Signer
from server.ingest.admission import Admission, AdmissionSettings
from server.ingest.datasets import DatasetAnswers
from server.ingest.gaps import due_resends
from server.ingest.metrics import IngestMetrics
from server.ingest.pipeline import BatchOutcome, Incoming, dead_letter, ingest_batch
from server.ingest.registry import DeviceRegistry

log = logging.getLogger(__name__)
ACKS_PER_MESSAGE = 500
# Cyclic GC of an ingest process: a batch makes tens of thousands of short-lived containers, and with the
# default threshold (700) the collector would run dozens of times per batch, each time walking the long-lived
# objects too (models, metadata, pools). What this saves is measured in README.md, "Benchmarks".
GC_THRESHOLDS = (100_000, 50, 1000)


def tune_gc_for_ingest() -> None:
    """Collect once, move what the process holds so far out of the collector's way (``gc.freeze``) and
    raise the thresholds; idempotent. Reference counting still frees everything that is not a cycle."""
    if gc.get_threshold() != GC_THRESHOLDS:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


@dataclass(frozen=True)
class IngestSettings:
    mqtt_url: str
    client_id: str = "ingest-1"
    username: str | None = "ingest-svc"
    password: str | None = None
    shared_group: str | None = "ingest"
    batch_max: int = 500  # messages in one transaction, at most
    batch_max_bytes: int = 4 << 20  # and their payloads' bytes, at most (a message over it goes alone)
    batch_wait_s: float = 0.01
    gap_timeout_s: float = 30.0
    resend_interval_s: float = 60.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    stall_s: float = 60.0  # health: a message waiting longer than this means the worker is not keeping up
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)  # credit for devices that ask (``credit_ask``)


_DB_ERRORS = (OperationalError, psycopg.OperationalError, sqlite3.OperationalError)
Received = tuple[float, mqtt.MQTTMessage]  # (monotonic time it arrived, the message)
# back before the devices (their first reconnect waits 0.5 to 1 s): a few workers make no herd
RECONNECT_MIN_S = 0.1


class IngestWorker:
    """Consumes device messages and requests; ``start()`` then ``stop()``."""

    def __init__(
        self,
        settings: IngestSettings,
        sessions: sessionmaker[Session],
        signer: Signer,
        clock: Clock | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._sessions = sessions
        self._signer = signer
        self._clock = clock or SystemClock()
        self._devices = DeviceRegistry(sessions)
        self.admission = Admission(settings.admission)
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._stop = threading.Event()
        self.subscribed = threading.Event()  # set once the broker has granted the subscriptions
        self._thread: threading.Thread | None = None
        self._in_hand: list[Received] = []  # the batch being handled (kept if the thread dies)
        self._alone = False  # the batch in hand is one message taken again after the thread died
        self.connected = False
        self._connects = 0  # links to the broker made (paho's thread counts them)
        self._connects_seen = 0  # ... and those the worker's thread has taken into account
        self.processed = 0
        self.dead_lettered = 0  # messages dead-lettered whole by the worker (errors while handling them)
        self.restarts = 0
        addr = parse_broker_url(settings.mqtt_url)
        self._addr = addr
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        user = settings.username or addr.username
        if user:
            client.username_pw_set(user, settings.password or addr.password)
        if addr.tls:
            client.tls_set(ca_certs=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key)
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(RECONNECT_MIN_S, 30)  # type: ignore[arg-type]
        client.on_socket_open = _nodelay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        if metrics is not None:
            metrics.watch(self.pending)
            metrics.watch_admission(self.admission)

    def _filters(self) -> list[str]:
        group = self.settings.shared_group
        prefix = f"$share/{group}/" if group else ""
        return [f"{prefix}{TOPIC_ROOT}/+/up/#", f"{prefix}{TOPIC_ROOT}/+/req"]

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log_event(log, "ingest.connect_failed", reason=str(reason))
            return
        self.connected = True
        self._connects += 1
        client.subscribe([(f, 1) for f in self._filters()])
        log_event(log, "ingest.connected", client_id=self.settings.client_id, filters=self._filters())

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected = False

    def _on_subscribe(self, _client: mqtt.Client, _ud: Any, _mid: int, reasons: Any, _props: Any) -> None:
        if not any(r.is_failure for r in reasons):
            self.subscribed.set()

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """Block until the worker's subscriptions are in place (tests publish right after start)."""
        return self.subscribed.wait(timeout)

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((self._clock.monotonic(), msg))  # no DB work in paho's thread

    def start(self) -> None:
        tune_gc_for_ingest()
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()
        self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"ingest-{self.settings.client_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def alive(self) -> bool:
        """True while the worker's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def ensure_running(self) -> bool:
        """Start the worker's thread again if it ended (not stopped); True if it had to."""
        if self._stop.is_set() or self._thread is None or self._thread.is_alive():
            return False
        self.restarts += 1
        log.error(
            "ingest.worker_restarted",
            extra={"event": "ingest.worker_restarted", "client_id": self.settings.client_id,
                   "held": len(self._in_hand), "restarts": self.restarts},
        )  # fmt: skip
        self._start_thread()
        return True

    def health(self) -> str:
        """``ok``, or why not: its thread ended, it is not connected to the broker, or a message has waited
        longer than ``stall_s`` (the worker is stuck or cannot keep up)."""
        if not self.alive:
            return "down: its thread ended"
        if not self.connected:
            return "down: not connected to the broker"
        waited = self.oldest_wait()
        if waited > self.settings.stall_s:
            return f"stalled: a message has waited {waited:.0f} s (limit {self.settings.stall_s:.0f} s)"
        return "ok"

    def pending(self) -> int:
        """Messages received and not yet handled (the batch in hand and the queue)."""
        return len(self._in_hand) + self._inbox.qsize()

    def oldest_wait(self) -> float:
        """Seconds the oldest message not yet handled has waited (0 when none waits)."""
        held = self._in_hand
        oldest = held[0][0] if held else None
        with self._inbox.mutex:
            if self._inbox.queue:
                queued = self._inbox.queue[0][0]
                oldest = queued if oldest is None else min(oldest, queued)
        return 0.0 if oldest is None else max(0.0, self._clock.monotonic() - oldest)

    def _run(self) -> None:
        if self._in_hand:
            self._after_death()
        last_gap_check = self._clock.monotonic()
        while not self._stop.is_set():
            try:
                self._relinked()
                batch = self._collect()
                if batch:
                    self._in_hand = batch
                    self._process(batch)
                    self._in_hand = []
                if self.admission.waiting:
                    self._publish_credits(self.admission.grants(self._clock.monotonic()))
                if self._clock.monotonic() - last_gap_check >= 1.0:
                    last_gap_check = self._clock.monotonic()
                    self.check_gaps()
            except Exception:  # a bug outside any one message's handling: log it, keep the worker going
                log.exception("ingest.step_failed", extra={"event": "ingest.step_failed"})
                self._in_hand = []
                self._stop.wait(1.0)

    def _after_death(self) -> None:
        """The thread died holding ``_in_hand``: take those messages one at a time, and dead-letter without
        handling it again the one it was already handling alone when it died."""
        held = self._in_hand
        if self._alone:
            _arrived, m = held[0]
            if not self._dead_letter(_incoming(m), "worker_died", "the ingest worker died while handling it"):
                self._in_hand, self._alone = [], False  # database down: the device resends
                return
            self._client.ack(m.mid, m.qos)
            held = held[1:]
        self._alone = True
        while held:
            self._in_hand = held  # its first message is handled alone
            self._process(held[:1])
            held = held[1:]
        self._in_hand, self._alone = [], False

    def _collect(self) -> list[Received]:
        try:
            first = self._inbox.get(timeout=0.05 if self.admission.waiting else 0.2)
        except queue.Empty:
            return []
        batch = [first]
        size = len(first[1].payload)
        deadline = self._clock.monotonic() + self.settings.batch_wait_s
        while len(batch) < self.settings.batch_max and size < self.settings.batch_max_bytes:
            try:
                got = self._inbox.get_nowait()
            except queue.Empty:
                if self._clock.monotonic() >= deadline:
                    break
                try:
                    got = self._inbox.get(timeout=max(0.0, deadline - self._clock.monotonic()))
                except queue.Empty:
                    break
            batch.append(got)
            size += len(got[1].payload)
        return batch

    def _process(self, batch: list[Received]) -> None:
        messages = [m for _t, m in batch]
        outcome, handled = self._handle([_incoming(m) for m in messages])
        for m in messages[:handled]:  # only now, after COMMIT; the rest: database down, the device resends
            self._client.ack(m.mid, m.qos)
        self._publish_outcome(outcome)
        self._admit(outcome, batch[0][0])
        self.processed += handled
        if self._metrics is not None:
            self._metrics.batch_done(
                (t for t, _m in batch[:handled]), self._clock.monotonic(), outcome.accepted,
                outcome.duplicates, outcome.conflicts, outcome.dead_letters,
            )  # fmt: skip

    def _handle(self, incoming: list[Incoming]) -> tuple[BatchOutcome, int]:
        """Commit ``incoming`` in one transaction, else one message per transaction; return the outcome and
        how many messages (a prefix of ``incoming``) are done: stored, or dead-lettered."""
        try:
            return self._commit(incoming), len(incoming)
        except Exception as exc:
            if self._database_down(exc):
                return BatchOutcome(), 0
            log.warning("ingest.batch_failed", extra={"event": "ingest.batch_failed", "messages": len(incoming),
                        "error": f"{type(exc).__name__}: {exc}"[:300]})  # fmt: skip
        total = BatchOutcome()
        for done, message in enumerate(incoming):
            for attempt in range(3):
                try:
                    total.merge(self._commit([message]))
                    break
                except Exception as exc:
                    if self._database_down(exc):
                        return total, done
                    if isinstance(exc, _DB_ERRORS) and attempt < 2:  # a lock or a restart passes: retry
                        self._stop.wait(1.0)
                        continue
                    log.error("ingest.message_failed", exc_info=exc,
                              extra={"event": "ingest.message_failed", "topic": message.topic[:256]})  # fmt: skip
                    if not self._dead_letter(message, "internal_error", f"{type(exc).__name__}: {exc}"):
                        return total, done
                    break
        return total, len(incoming)

    def _commit(self, incoming: list[Incoming]) -> BatchOutcome:
        """``ingest_batch`` in one transaction, redone while another worker's inserts collide with it."""
        for attempt in range(5):
            try:
                with self._sessions() as session, session.begin():
                    return ingest_batch(session, incoming, self._devices, self._clock.now())
            except IntegrityError:  # another worker inserted the same keys first: redo, they are dups now
                if attempt == 4:
                    raise
                log_event(log, "ingest.batch_retry", attempt=attempt)
                self._stop.wait(random.uniform(0.0, 0.05 * (attempt + 1)))
        raise AssertionError("unreachable")

    def _database_down(self, exc: Exception) -> bool:
        """True (after a pause) if ``exc`` is the database's and it does not answer a trivial query now."""
        if not isinstance(exc, _DB_ERRORS):
            return False
        try:
            with self._sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            log_event(log, "ingest.db_error", error=str(exc)[:300])
            self._stop.wait(1.0)
            return True
        return False

    def _dead_letter(self, message: Incoming, reason: str, detail: str) -> bool:
        """Dead-letter one whole message in its own transaction; False if the database does not answer."""
        try:
            with self._sessions() as session, session.begin():
                dead_letter(session, self._clock.now(), message, reason, detail)
        except Exception as exc:
            if self._database_down(exc):
                return False
            log.error(  # a bug: the message is let go (acked) rather than stall the worker on it forever
                "ingest.dead_letter_failed", exc_info=exc,
                extra={"event": "ingest.dead_letter_failed", "topic": message.topic[:256],
                       "size": len(message.payload), "sha256": sha256_hex(message.payload)},
            )  # fmt: skip
        self.dead_lettered += 1
        if self._metrics is not None:
            self._metrics.dead_lettered()
        return True

    def _publish_outcome(self, outcome: BatchOutcome) -> None:
        now = self._clock.now().isoformat()
        for device_id, items in outcome.acks.items():
            for i in range(0, len(items), ACKS_PER_MESSAGE):
                ack = ack_body(device_id, now, items[i : i + ACKS_PER_MESSAGE])
                self._client.publish(ack_topic(device_id), seal(self._signer, DOMAIN_ACK, ack), qos=1)
        if not outcome.dataset_requests:
            return
        with self._sessions() as session:
            answers = DatasetAnswers(session)
            replies = [(device_id, answers.messages(ref)) for device_id, ref in outcome.dataset_requests]
        for device_id, messages in replies:
            for message in messages:
                self._client.publish(ref_topic(device_id), message, qos=1)

    def _admit(self, outcome: BatchOutcome, first_arrived: float) -> None:
        """Free the budget the batch's records held, adjust it to how long the batch's first message took,
        answer the batch's credit asks, and grant waiting devices."""
        admission = self.admission
        self._relinked()
        now = self._clock.monotonic()
        admission.committed(sum(len(items) for items in outcome.acks.values()), now)
        admission.observe(now - first_arrived, now)
        if not admission.settings.enabled:
            return
        answers = [(device_id, admission.ask(device_id, want, now)) for device_id, want in outcome.credit_asks]
        self._publish_credits(answers + admission.grants(now))

    def _relinked(self) -> None:
        """Tell the admission once the link to the broker came back after a loss (before the asks it brings)."""
        connects = self._connects
        if connects != self._connects_seen:
            if self._connects_seen:
                self.admission.link_lost()
            self._connects_seen = connects

    def _publish_credits(self, credits: list[tuple[str, int]]) -> None:
        ts = self._clock.now().isoformat()
        valid_s = self.settings.admission.valid_s
        for device_id, records in credits:
            grant = Credit(dev=device_id, records=records, valid_s=valid_s, ts=ts)
            self._client.publish(ctl_topic(device_id), seal(self._signer, DOMAIN_CONTROL, grant), qos=1)

    def check_gaps(self) -> int:
        """Ask devices to resend ranges missing for longer than the gap timeout; return how many asked."""
        try:
            with self._sessions() as session, session.begin():
                requests = due_resends(
                    session, self._clock.now(), self.settings.gap_timeout_s, self.settings.resend_interval_s
                )
        except Exception as exc:  # the next check comes in a second
            log_event(log, "ingest.gap_check_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return 0
        for req in requests:
            self._client.publish(ctl_topic(req.dev), seal(self._signer, DOMAIN_CONTROL, req), qos=1)
            log_event(log, "sync.resend_requested", device=req.dev, epoch=req.epoch, ranges=req.ranges[:5])
        return len(requests)


def _incoming(m: mqtt.MQTTMessage) -> Incoming:
    """The message as the pipeline takes it (a topic that is not UTF-8 kept with its bytes escaped)."""
    try:
        topic = m.topic
    except UnicodeDecodeError:
        topic = bytes(m._topic).decode("utf-8", "backslashreplace")
    return Incoming(topic, bytes(m.payload))


def _nodelay(_client: mqtt.Client, _ud: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def start_ingest_workers(
    settings: IngestSettings, sessions: sessionmaker[Session], signer: Signer, count: int = 1,
    clock: Clock | None = None, metrics: IngestMetrics | None = None,
) -> list[IngestWorker]:  # fmt: skip
    """Start ``count`` workers (client ids ``<client_id>-<n>``), counting into ``metrics``; the caller stops
    each."""
    workers = []
    for n in range(count):
        w = IngestWorker(
            replace(settings, client_id=f"{settings.client_id}-{n}"), sessions, signer, clock, metrics
        )
        w.start()
        workers.append(w)
    return workers


StopFn = Callable[[], None]
