"""The device's sync sender: drains the outbox over MQTT with a window, batching, resends and signed acks.

One thread owns the logic (``run``/``step``); paho's network thread only puts events on a queue. Rules:
- publish only while connected (paho's memory queue stays small; ``max_queued_messages`` = window as a guard);
- at most ``window`` records in flight, ``batch`` records per MQTT message, grouped by stream, each message
  signed once (wire v2: one Ed25519 signature over the sha256 digests of its records);
- the outbox is read by a cursor over ``(priority, seq)``: each fill reads only rows after the last one
  handed out; the pass restarts from the top when new rows are sealed, on (re)connect, on a resend request,
  after an ack timeout, and at most every ``rescan_s`` once a pass ran dry (rows whose backoff expired);
- on every (re)connect: ``hello`` and ``sync_ref``, and everything unacked counts as unsent again;
- a record not acked within its timeout is resent later with exponential backoff (capped) plus jitter; the
  timeout adapts to the acks' round trips as TCP's does (``edge.sync.rto``: srtt + 4·rttvar within
  [``ack_timeout_s``, ``ack_timeout_max_s``], Karn's rule, doubled per timeout of the same record);
- admission by credit (``edge.sync.credit``): records are published only within what the server's ingest
  granted, and asked for again when used up (after a reconnect, the records in flight when the link dropped go
  out again at once, as they were admitted on that link); a server that never answers is sent to within the
  window alone;
- a lost link is retried after a jittered, doubling delay (``next_reconnect_delay``): no fleet-wide herd;
- a row is freed only by a server-signed ack for exactly its sha256 (``apply_acks``); nothing is ever dropped;
- its own bookkeeping (seals, acks, backoff) commits without waiting for the disk (``redoable_transaction``):
  lost at a power cut, it is redone with the same result; business rows always commit with synchronous FULL.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from core.sync.broker_url import parse_broker_url
from core.sync.control import (
    MAX_CREDIT_RECORDS,
    Credit,
    CreditAsk,
    HeldChunks,
    Hello,
    RefApplied,
    Resend,
    SyncRef,
    ack_topic,
    ctl_topic,
    open_signed,
    parse_ack,
    parse_control,
    ref_topic,
    req_topic,
    seal,
    up_topic,
)
from core.sync.datasets import DatasetAssembler, RollbackRefused
from core.sync.envelope import EnvelopeError, encode_batch_message, plan_messages
from core.sync.signing import DOMAIN_ACK, DOMAIN_CONTROL, DOMAIN_REQUEST, BadSignature, KeyRing, Signer
from edge.db.base import redoable_transaction
from edge.db.meta import database_epoch
from edge.sync.credit import CreditSettings, SendCredit
from edge.sync.datasets import active_versions, apply_dataset, restore_chunks
from edge.sync.outbox import (
    Sendable,
    apply_acks,
    attempts,
    due_count,
    due_rows,
    make_due,
    max_seq,
    postpone,
    seal_pending,
)
from edge.sync.rto import RetransmitTimer

log = logging.getLogger(__name__)
FILL_MESSAGES = 2  # messages (of ``batch`` records) read and published per step


@dataclass(frozen=True)
class SenderSettings:
    mqtt_url: str
    device_id: str
    username: str | None = None
    password: str | None = None
    window: int = 1000
    batch: int = 100
    ack_timeout_s: float = 30.0  # the first timeout, before any round trip was measured, and the least
    ack_timeout_max_s: float = 300.0
    backoff_max_s: float = 300.0
    rescan_s: float = 1.0
    reconnect_min_s: float = 1.0  # first wait after a lost link, before jitter
    reconnect_max_s: float = 60.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    credit: CreditSettings = field(default_factory=CreditSettings)


class _Flight(NamedTuple):
    """A record in flight: when it was sent (monotonic), its priority (to know whether it lies after the
    pass's cursor), and the epoch and sha256 read from its row, which its ack must name."""

    sent: float
    priority: int
    epoch: str
    sha256: str
    deadline: float  # monotonic time after which it is resent


@dataclass(frozen=True)
class _Event:
    kind: str  # connected | disconnected | message
    topic: str = ""
    payload: bytes = b""


class SyncSender:
    def __init__(
        self,
        settings: SenderSettings,
        sessions: sessionmaker[Session],
        signer: Signer,
        server_keys: KeyRing,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._signer = signer
        self._keys = server_keys
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._events: queue.Queue[_Event] = queue.Queue()
        self._inflight: dict[int, _Flight] = {}  # seq -> when it was sent, and what its ack must name
        self._credit = SendCredit(settings.credit)
        self._lost_in_flight = 0  # records in flight when the link last dropped
        self._timer = RetransmitTimer(
            settings.ack_timeout_s, max(settings.ack_timeout_s, settings.ack_timeout_max_s)
        )
        self._cursor: tuple[int, int] | None = None  # (priority, seq) of the last row handed out this pass
        self._pass_dry_at: float | None = None  # monotonic time the current pass found nothing more
        self._ask_dry_at: float | None = None  # monotonic time the outbox had nothing more to ask credit for
        self._more = False  # the last fill stopped at its chunk size with room left in the window
        self._sealed_upto = 0  # every row up to this seq is sealed
        self._top_seen = 0  # the outbox's highest seq when last read
        self._watch: Any = None  # a DBAPI connection that only asks SQLite whether others committed
        self._db_version: int | None = None  # SQLite's data_version when the outbox was last read
        self._online = False
        self._greet_due = False  # connected, and the hello and sync_ref not yet sent
        self.step_errors = 0  # steps that failed (logged, then retried after a pause)
        self.last_error: str | None = None  # of the last failed step, while no step has succeeded since
        # chunks of large datasets still incomplete (also kept in the database: restored by ``start``)
        self._ref_chunks = DatasetAssembler()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.acked = 0
        self.sent_records = 0
        self.resends = 0
        self._disconnects = 0  # since the last successful connect (paho's thread only)
        addr = parse_broker_url(settings.mqtt_url)
        self._addr = addr
        dev = settings.device_id
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=dev, clean_session=True, protocol=mqtt.MQTTv311
        )
        user = settings.username or addr.username or dev
        client.username_pw_set(user, settings.password or addr.password)
        if addr.tls:
            client.tls_set(ca_certs=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(max(settings.window, 100))
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)  # type: ignore[arg-type]
        client.on_socket_open = _nodelay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    # --- paho thread: only queue events ---
    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        dev = self.settings.device_id
        self._disconnects = 0
        client.subscribe([(ack_topic(dev), 1), (ctl_topic(dev), 1), (ref_topic(dev), 1)])
        self._events.put(_Event("connected"))

    def _on_disconnect(self, *_args: Any) -> None:
        # paho waits min_delay, then doubles up to max_delay; a jittered min_delay per device and per loss
        # spreads a fleet's reconnects after a broker restart instead of a herd on the same second
        delay = self.next_reconnect_delay()
        self._client.reconnect_delay_set(delay, self.settings.reconnect_max_s)  # type: ignore[arg-type]
        self._events.put(_Event("disconnected"))

    def next_reconnect_delay(self) -> float:
        """Seconds before the next reconnect attempt: "equal jitter" over a cap that doubles with each loss
        since the last good connect (``reconnect_min_s`` · 2^k, at most ``reconnect_max_s``)."""
        self._disconnects += 1
        cap = min(
            self.settings.reconnect_max_s,
            self.settings.reconnect_min_s * 2.0 ** min(self._disconnects - 1, 16),
        )
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        self._events.put(_Event("message", msg.topic, bytes(msg.payload)))

    # --- lifecycle ---
    def start(self) -> None:
        """Connect and run in a background thread (paho reconnects on its own; see ``next_reconnect_delay``)."""
        self.resume_downloads()
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self.run, name="sync-sender", daemon=True)
        self._thread.start()

    def resume_downloads(self) -> None:
        """Take back the chunks of datasets whose download a restart cut (kept in the database)."""
        with self._sessions() as session, session.begin():
            restore_chunks(session, self._keys, self._ref_chunks)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()
        self._close_watch()

    def run(self) -> None:
        """Step until stopped. A step that fails (a bug, a full disk, a locked database) is logged and
        retried after a pause that doubles up to 30 s: the sender never dies while the device runs."""
        pause = 0.0
        while not self._stop.is_set():
            try:
                self.step(wait_s=0.0 if self._more else 0.05)  # no pause while the window still has room
                pause = 0.0
                self.last_error = None
            except Exception as exc:  # any fault: keep syncing once it clears
                self.step_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                pause = min(max(pause * 2, 0.5), 30.0)
                log.error(
                    "sync.step_failed",
                    exc_info=True,
                    extra={
                        "event": "sync.step_failed",
                        "error": self.last_error,
                        "retry_s": pause,
                    },
                )
                self._forget_all()  # a step cut short: what was in flight is resent (acked as duplicates)
                self._restart_pass()
                self._stop.wait(pause)

    @property
    def online(self) -> bool:
        return self._online

    @property
    def credit_due(self) -> float | None:
        """The monotonic time the sender's credit changes without a message (``SendCredit.next_due``)."""
        return self._credit.next_due()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def ack_timeout(self) -> float:
        """The current timeout of a record sent for the first time (seconds)."""
        return self._timer.rto

    def health(self) -> dict[str, object]:
        """For the device's ``/status``: connected or not, records in flight and acked since start, and
        whether the sender is failing (``last_error`` until a step succeeds again)."""
        return {
            "online": self._online,
            "inflight": len(self._inflight),
            "acked": self.acked,
            "resends": self.resends,
            "step_errors": self.step_errors,
            "last_error": self.last_error,
            "credit": self._credit.state.value,
        }

    def step(self, wait_s: float = 0.0) -> None:
        """Handle queued events, expire overdue in-flight records, seal new rows and fill the window."""
        try:
            event: _Event | None = (
                self._events.get(timeout=wait_s) if wait_s > 0 else self._events.get_nowait()
            )
        except queue.Empty:
            event = None
        handled = 0
        while event is not None and handled < 1000:
            self._handle(event)
            handled += 1
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                event = None
        if self._greet_due and self._online:
            self._greet()
            self._greet_due = False
        self._expire()
        self._seal()
        self._fill()

    def _seal(self) -> None:
        version = self._data_version()
        if version is not None and version == self._db_version and self._sealed_upto >= self._top_seen:
            return  # nothing committed to the database since the outbox was last read: no new rows
        self._db_version = version
        with self._sessions() as session:  # a read only, no transaction to commit
            top = max_seq(session)
        self._top_seen = top
        if top <= self._sealed_upto:
            return
        with redoable_transaction(self._sessions) as session:
            sealed = seal_pending(
                session, self.settings.device_id, self._signer, limit=2000, after_seq=self._sealed_upto
            )
        if sealed < 2000:
            self._sealed_upto = top
        if sealed:
            self._restart_pass()  # a new row may rank before the cursor (a payment during a segment drain)

    def _data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version`` on a connection of the sender's own that never writes: it changes
        whenever another connection (a new record, the sender's own bookkeeping) commits. None if the
        database cannot say (then the outbox is read on every step)."""
        try:
            if self._watch is None:
                bind = self._sessions.kw.get("bind")
                if bind is None or bind.dialect.name != "sqlite":
                    return None
                self._watch = bind.raw_connection()
            cursor = self._watch.cursor()
            try:
                cursor.execute("PRAGMA data_version")
                row = cursor.fetchone()
            finally:
                cursor.close()
            return int(row[0]) if row else None
        except Exception:  # the watch is an optimisation only: read the outbox instead
            self._close_watch()
            return None

    def _close_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            try:
                watch.close()
            except Exception:  # closing a broken connection: nothing more to do
                log.debug("sync.watch_close_failed", exc_info=True)

    def _restart_pass(self) -> None:
        self._cursor = None
        self._pass_dry_at = None
        self._ask_dry_at = None

    def _forget(self, seq: int) -> None:
        self._inflight.pop(seq, None)

    def _forget_all(self) -> None:
        self._inflight.clear()

    def _handle(self, event: _Event) -> None:
        if event.kind == "connected":
            self._online = True
            resend = self._lost_in_flight or len(self._inflight)
            self._credit.connected(resend, self._clock.monotonic())
            self._lost_in_flight = 0
            self._forget_all()  # paho's in-flight state counts as unsent
            self._restart_pass()
            self._greet_due = True  # sent by ``step``, again after a failure until it goes out
            log_event(log, "sync.online", device=self.settings.device_id)
        elif event.kind == "disconnected":
            self._online = False
            self._credit.lost()
            self._lost_in_flight = len(self._inflight)  # resent first once reconnected, without an ask
            self._forget_all()
            self._restart_pass()
            log_event(log, "sync.offline", device=self.settings.device_id)
        elif event.topic.endswith("/ack"):
            self._handle_ack(event.payload)
        elif event.topic.endswith("/down/ctl"):
            self._handle_ctl(event.payload)
        elif event.topic.endswith("/down/ref"):
            self._handle_ref(event.payload)

    def _greet(self) -> None:
        dev = self.settings.device_id
        with self._sessions() as session, session.begin():
            epoch = database_epoch(session)
            top = max_seq(session)  # not stats(): that scans the whole outbox
            have = active_versions(session)
        now = self._clock.now().isoformat()
        self._client.publish(
            req_topic(dev),
            seal(self._signer, DOMAIN_REQUEST, Hello(dev=dev, epoch=epoch, max_seq=top, ts=now)),
            1,
        )
        partial = {
            name: HeldChunks(version=v, chunks=held) for name, (v, held) in self._ref_chunks.held().items()
        }
        self._client.publish(
            req_topic(dev),
            seal(self._signer, DOMAIN_REQUEST, SyncRef(dev=dev, have=have, partial=partial)),
            1,
        )

    def _handle_ack(self, data: bytes) -> None:
        try:
            body, _kid = open_signed(data, self._keys, DOMAIN_ACK)
            dev, entries = parse_ack(body)
            if dev != self.settings.device_id:
                raise EnvelopeError("unexpected", "not an ack for this device")
        except (EnvelopeError, BadSignature) as exc:
            log_event(log, "sync.ack_refused", reason=str(exc)[:200])
            return
        with redoable_transaction(self._sessions) as session:
            freed = apply_acks(session, entries, self._clock.now(), self._inflight)
        now = self._clock.monotonic()
        sent_at: set[float] = set()  # one round trip per message (its records share their send time)
        for seq in freed:
            flight = self._inflight.get(seq)
            if self._timer.acked(seq) and flight is not None:
                sent_at.add(flight.sent)
            self._forget(seq)
        for sent in sent_at:
            self._timer.sample(now - sent)
        self.acked += len(freed)
        for item in entries:
            if item.status in ("conflict", "rejected"):
                log.warning("sync.record_refused", extra={"event": "sync.record_refused", "seq": item.seq,
                                                          "status": item.status, "reason": item.reason})  # fmt: skip

    def _handle_ctl(self, data: bytes) -> None:
        try:
            body, _kid = open_signed(data, self._keys, DOMAIN_CONTROL)
            req = parse_control(body)
            if not isinstance(req, Resend | Credit) or req.dev != self.settings.device_id:
                raise EnvelopeError("unexpected", "not a resend request or credit for this device")
        except (EnvelopeError, BadSignature) as exc:
            log_event(log, "sync.ctl_refused", reason=str(exc)[:200])
            return
        if isinstance(req, Credit):
            self._credit.granted(req.records, req.valid_s, self._clock.monotonic())
            return
        with redoable_transaction(self._sessions) as session:
            count = make_due(session, req.epoch, req.ranges)
        for lo, hi in req.ranges:
            for seq in [s for s in self._inflight if lo <= s <= hi]:
                self._forget(seq)
        self._restart_pass()
        log_event(log, "sync.resend_requested", epoch=req.epoch, rows=count)

    def _handle_ref(self, data: bytes) -> None:
        try:
            with self._sessions() as session, session.begin():
                applied = apply_dataset(session, data, self._keys, self._clock.now(), self._ref_chunks)
        except (EnvelopeError, BadSignature, RollbackRefused) as exc:
            log_event(log, "sync.dataset_refused", reason=str(exc)[:200])
            return
        if applied is None:
            return  # a chunk was kept; the dataset is swapped in with its last chunk
        dev = self.settings.device_id
        msg = RefApplied(dev=dev, dataset=applied.dataset, version=applied.version)
        self._client.publish(req_topic(dev), seal(self._signer, DOMAIN_REQUEST, msg), 1)

    def _expire(self) -> None:
        if not self._inflight:
            return
        now = self._clock.monotonic()
        overdue = [seq for seq, f in self._inflight.items() if now >= f.deadline]
        if not overdue:
            return
        self._timer.timed_out(overdue)
        with redoable_transaction(self._sessions) as session:
            sent = attempts(session, overdue)
            delays = {seq: self._backoff(sent.get(seq, 0)) for seq in overdue}
            postpone(session, overdue, delays, self._clock.now().timestamp())
        for seq in overdue:
            self._forget(seq)
        self.resends += len(overdue)
        self._restart_pass()

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff capped at ``backoff_max_s``, with full jitter over its upper half."""
        base = min(self.settings.backoff_max_s, 2.0 ** min(attempts, 20))
        return base / 2 + self._rng.uniform(0, base / 2)

    def _fill(self) -> None:
        self._more = False
        if not self._online or not self._client.is_connected():
            return
        room = self.settings.window - len(self._inflight)
        if room <= 0:
            return
        mono = self._clock.monotonic()
        if self._pass_dry_at is not None:
            if mono - self._pass_dry_at < self.settings.rescan_s:
                return
            self._restart_pass()
        allowance = self._credit.allowance(mono)
        ask_dry = self._ask_dry_at is not None and mono - self._ask_dry_at < self.settings.rescan_s
        if allowance is not None and not ask_dry and self._credit.should_ask(mono):
            self._ask_credit(mono, room, allowance)
        if allowance == 0:
            return
        if allowance is not None:
            room = min(room, allowance)
        # a few messages per step: the first leave at once instead of after the whole window was read,
        # and acks are handled between fills
        chunk = min(room, FILL_MESSAGES * self.settings.batch)
        cursor = self._cursor
        if cursor is None:
            exclude = set(self._inflight)
        else:
            exclude = {s for s, f in self._inflight.items() if (f.priority, s) > cursor}
        with self._sessions() as session:
            rows = due_rows(session, self._clock.now().timestamp(), exclude, chunk, after=cursor)
        if len(rows) < chunk:
            self._pass_dry_at = mono  # this pass is done; the next starts from the top
        else:
            self._more = chunk < room
        if not rows:
            return
        self._cursor = (rows[-1].priority, rows[-1].seq)
        by_stream: dict[str, list[Sendable]] = defaultdict(list)
        for row in rows:
            by_stream[row.stream].append(row)
        dev = self.settings.device_id
        for stream, group in by_stream.items():
            sizes = [len(r.payload) for r in group]
            for start, end in plan_messages(self._signer.kid, sizes, self.settings.batch):
                part = group[start:end]  # at most ``batch`` records and never over the server's byte limit
                data = encode_batch_message(self._signer, [r.payload for r in part])
                info = self._client.publish(up_topic(dev, stream), data, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    self._restart_pass()
                    return  # disconnected meanwhile: the rows stay pending, nothing is lost
                for r in part:
                    timeout = self._timer.sent(r.seq)
                    self._inflight[r.seq] = _Flight(mono, r.priority, r.epoch, r.sha256, mono + timeout)
                self._credit.spent(len(part))
                self.sent_records += len(part)

    def _ask_credit(self, mono: float, room: int, held: int) -> None:
        """Ask the server for the records due beyond those in flight and the ``held`` credit (up to the
        window's room); with none held and none to ask for, the pass is dry until new rows or ``rescan_s``."""
        with self._sessions() as session:  # a read only
            due = due_count(session, self._clock.now().timestamp(), room + len(self._inflight))
        want = min(due - len(self._inflight) - held, room, MAX_CREDIT_RECORDS)  # in-flight rows are due too
        if want <= 0:  # look again after ``rescan_s``, or at once when new rows are sealed
            self._ask_dry_at = mono
            if held == 0:
                self._pass_dry_at = mono
            return
        dev = self.settings.device_id
        ask = seal(self._signer, DOMAIN_REQUEST, CreditAsk(dev=dev, want=want))
        info = self._client.publish(req_topic(dev), ask, 1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._credit.asked(mono)


def _nodelay(_client: mqtt.Client, _ud: Any, sock: Any) -> None:
    if hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
