"""An ingest worker: one MQTT client on a (shared) subscription feeding batches into one DB transaction each.

Acks are published, and the MQTT messages acknowledged to the broker (paho ``manual_ack``), only after the
batch's COMMIT. Several workers (threads, processes or hosts) can run at once: with ``shared_group`` set they
split the load through ``$share/<group>/...`` (Mosquitto, EMQX, HiveMQ); without it (amqtt) each receives
everything and idempotent inserts make the extra copies harmless duplicates.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from core.sync.broker_url import parse_broker_url
from core.sync.control import TOPIC_ROOT, ack_body, ack_topic, ctl_topic, ref_topic, seal
from core.sync.signing import DOMAIN_ACK, DOMAIN_CONTROL, Signer
from server.ingest.datasets import ref_messages
from server.ingest.gaps import due_resends
from server.ingest.pipeline import BatchOutcome, Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry

log = logging.getLogger(__name__)
ACKS_PER_MESSAGE = 500
# Cyclic GC of an ingest process: a batch of 1000 records makes ~50 000 short-lived containers, and with
# the default threshold (700) the collector ran dozens of times per batch, each time walking the long-lived
# objects too (models, metadata, pools). Measured on 20 000 records: 47-55 -> 38-41 us of CPU per record.
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
    batch_max: int = 500
    batch_wait_s: float = 0.01
    gap_timeout_s: float = 30.0
    resend_interval_s: float = 60.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


class IngestWorker:
    """Consumes device messages and requests; ``start()`` then ``stop()``."""

    def __init__(
        self,
        settings: IngestSettings,
        sessions: sessionmaker[Session],
        signer: Signer,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._signer = signer
        self._clock = clock or SystemClock()
        self._devices = DeviceRegistry(sessions)
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stop = threading.Event()
        self.subscribed = threading.Event()  # set once the broker has granted the subscriptions
        self._thread: threading.Thread | None = None
        self.processed = 0
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
        client.reconnect_delay_set(1, 30)
        client.on_socket_open = _nodelay
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def _filters(self) -> list[str]:
        group = self.settings.shared_group
        prefix = f"$share/{group}/" if group else ""
        return [f"{prefix}{TOPIC_ROOT}/+/up/#", f"{prefix}{TOPIC_ROOT}/+/req"]

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log_event(log, "ingest.connect_failed", reason=str(reason))
            return
        client.subscribe([(f, 1) for f in self._filters()])
        log_event(log, "ingest.connected", client_id=self.settings.client_id, filters=self._filters())

    def _on_subscribe(self, _client: mqtt.Client, _ud: Any, _mid: int, reasons: Any, _props: Any) -> None:
        if not any(r.is_failure for r in reasons):
            self.subscribed.set()

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """Block until the worker's subscriptions are in place (tests publish right after start)."""
        return self.subscribed.wait(timeout)

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(msg)  # no DB work in paho's thread

    def start(self) -> None:
        tune_gc_for_ingest()
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()
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

    def _run(self) -> None:
        last_gap_check = self._clock.monotonic()
        while not self._stop.is_set():
            batch = self._collect()
            if batch:
                self._process(batch)
            if self._clock.monotonic() - last_gap_check >= 1.0:
                last_gap_check = self._clock.monotonic()
                self.check_gaps()

    def _collect(self) -> list[mqtt.MQTTMessage]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = self._clock.monotonic() + self.settings.batch_wait_s
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                if self._clock.monotonic() >= deadline:
                    break
                try:
                    batch.append(self._inbox.get(timeout=max(0.0, deadline - self._clock.monotonic())))
                except queue.Empty:
                    break
        return batch

    def _process(self, batch: list[mqtt.MQTTMessage]) -> None:
        incoming = [Incoming(m.topic, bytes(m.payload)) for m in batch]
        outcome = self._commit(incoming)
        if outcome is None:  # database down: do not ack; the broker or the device will resend
            return
        for m in batch:  # only now, after COMMIT
            self._client.ack(m.mid, m.qos)
        self._publish_outcome(outcome)
        self.processed += len(batch)

    def _commit(self, incoming: list[Incoming]) -> BatchOutcome | None:
        for attempt in range(5):
            try:
                with self._sessions() as session, session.begin():
                    return ingest_batch(session, incoming, self._devices, self._clock.now())
            except IntegrityError:  # another worker inserted the same keys first: redo, they are dups now
                log_event(log, "ingest.batch_retry", attempt=attempt)
                self._stop.wait(random.uniform(0.0, 0.05 * (attempt + 1)))
            except OperationalError as exc:
                log_event(log, "ingest.db_error", error=str(exc)[:300])
                self._stop.wait(1.0)
                return None
        return None

    def _publish_outcome(self, outcome: BatchOutcome) -> None:
        now = self._clock.now().isoformat()
        for device_id, items in outcome.acks.items():
            for i in range(0, len(items), ACKS_PER_MESSAGE):
                ack = ack_body(device_id, now, items[i : i + ACKS_PER_MESSAGE])
                self._client.publish(ack_topic(device_id), seal(self._signer, DOMAIN_ACK, ack), qos=1)
        for device_id, ref in outcome.dataset_requests:
            with self._sessions() as session:
                messages = ref_messages(session, ref)
            for message in messages:
                self._client.publish(ref_topic(device_id), message, qos=1)

    def check_gaps(self) -> int:
        """Ask devices to resend ranges missing for longer than the gap timeout; return how many asked."""
        try:
            with self._sessions() as session, session.begin():
                requests = due_resends(
                    session, self._clock.now(), self.settings.gap_timeout_s, self.settings.resend_interval_s
                )
        except (IntegrityError, OperationalError):
            return 0
        for req in requests:
            self._client.publish(ctl_topic(req.dev), seal(self._signer, DOMAIN_CONTROL, req), qos=1)
            log_event(log, "sync.resend_requested", device=req.dev, epoch=req.epoch, ranges=req.ranges[:5])
        return len(requests)


def _nodelay(_client: mqtt.Client, _ud: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def start_ingest_workers(
    settings: IngestSettings, sessions: sessionmaker[Session], signer: Signer, count: int = 1,
    clock: Clock | None = None,
) -> list[IngestWorker]:  # fmt: skip
    """Start ``count`` workers (client ids ``<client_id>-<n>``); the caller stops each."""
    workers = []
    for n in range(count):
        w = IngestWorker(replace(settings, client_id=f"{settings.client_id}-{n}"), sessions, signer, clock)
        w.start()
        workers.append(w)
    return workers


StopFn = Callable[[], None]
