"""The payment desk: the card terminal and the printer behind the officer app, and the payments it runs.

- **One payment per protocol at a time, idempotent Pay.** Every Pay request carries a key made when its page
  was drawn. The key is committed (``pay_request``) before anything starts; the same key again (a double tap, a
  retried request) returns the same job, and a new key while a job of that protocol runs (a second tab) joins
  it. So no repeat ever starts a second authorisation. A new Pay after a finished attempt that took no money
  (declined, refused, cancelled) starts a new attempt; the workflow refuses a protocol already paid or in doubt.
- **A job** runs ``PaymentWorkflow.pay`` on its own thread, keeps what the officer must see (step, what the
  terminal shows, the question of the own-card check, the outcome) and prints both receipts once paid. Every
  change wakes the pages (``LiveBus``).
- **The officer's answers** during the own-card check arrive from the page (``answer``); Cancel (``cancel``)
  stops the job: a pending question is left unanswered (the workflow aborts the card on the terminal), a
  running Read Card or Authorisation gets 06 B0.
- **Hardware** is used by one thing at a time (a payment, receipts, a recovery, a status poll); the line and
  the printer connection are opened for each use, so the command line can use them while the app is idle.
- **After a crash or restart** there is no job in memory: the page shows the attempt from the journal, and at
  start the desk asks the terminal about attempts whose result is unknown (``recover``), as ``pay`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.structured_log import log_event
from edge.config import EdgeConfig
from edge.db.base import transaction
from edge.db.officer_app import PayRequest
from edge.db.protocols import Protocol
from edge.identity import DeviceIdentity
from edge.officer_app.status_board import DeviceReadiness
from edge.payment.attempt_states import BEFORE_AUTHORISATION, RESULT_UNKNOWN
from edge.payment.attempts import AttemptJournal
from edge.payment.events import PaymentEvent, PaymentEvents, StateChanged, StepStarted, TerminalShows
from edge.payment.ports import CardRead, PromptUnanswered
from edge.payment.recovery import Recovery
from edge.payment.workflow import PaidFine, PaymentError, PaymentWorkflow
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from edge.receipts.printing import ReceiptError, ReceiptService
from edge.receipts.readiness import DriverPrinterCheck
from edge.receipts.settings import ReceiptSettings
from hardware.printer.driver import EscposPrinter
from hardware.printer.profiles import profile_by_name
from hardware.zvt.commands import INTERMEDIATE_TEXT
from hardware.zvt.errors import ChannelError
from hardware.zvt.transport import LineSettings, SerialChannel

log = logging.getLogger(__name__)

KEY = re.compile(r"^[0-9a-f]{32}$")
_CODE_OF_TEXT = {text: code for code, text in INTERMEDIATE_TEXT.items()}


class DeskRefused(ValueError):
    """A request the desk will not take (a malformed key, a key of another protocol, no agreement yet)."""


class LiveBus:
    """Wakes every open page when something it shows may have changed (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.version = 0

    def notify(self) -> None:
        with self._lock:
            self.version += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the page's loop has closed
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seen: int, timeout: float) -> int:
        """The version after a change since ``seen``, or the same one after ``timeout`` seconds."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self.version != seen:
                return self.version
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self.version


@dataclass
class Question:
    """What the own-card check asks the officer: ``probable`` (compare the ID, confirm) or ``no_name``
    (the card gives no name: compare the embossed name with the ID)."""

    kind: Literal["probable", "no_name"]
    last4: str
    holder: str
    driver: str
    reason: str


@dataclass
class PaymentJob:
    id: str
    protocol_number: str
    badge: str
    started_at: datetime
    attempt_id: str | None = None
    step: str | None = None
    terminal_text: str | None = None
    terminal_code: int | None = None
    question: Question | None = None
    finished: bool = False
    outcome: str | None = None  # paid | not_paid | in_doubt | aborted | error
    error_kind: str = ""  # the workflow's exception class (OwnCardRefused, PaymentDeclined, …)
    message: str = ""
    paid: PaidFine | None = None
    cancel_requested: bool = False
    printing: bool = False
    workflow: PaymentWorkflow | None = None
    _answer: threading.Event = field(default_factory=threading.Event)
    _answer_value: bool = False


class WebOfficerDesk:
    """``OfficerDesk`` for the app: a question waits for the officer's tap (or Cancel)."""

    def __init__(self, job: PaymentJob, notify: Callable[[], None]) -> None:
        self.job = job
        self.notify = notify

    def _ask(self, question: Question) -> bool:
        job = self.job
        job._answer.clear()
        job.question = question
        self.notify()
        try:
            while not job._answer.wait(0.1):
                if job.cancel_requested:
                    raise PromptUnanswered("cancelled by the officer")
            return job._answer_value
        finally:
            job.question = None
            self.notify()

    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        return self._ask(Question("probable", card.last4, card.holder_name or "", driver_name, reason))

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        return self._ask(Question("no_name", card.last4, "", driver_name, ""))


class PaymentDesk:
    def __init__(
        self,
        config: EdgeConfig,
        identity: DeviceIdentity,
        sessions: sessionmaker[Session],
        clock: Clock,
        bus: LiveBus | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.sessions = sessions
        self.clock = clock
        self.bus = bus or LiveBus()
        self._lock = threading.Lock()  # the job tables
        self._hardware = threading.Lock()  # the terminal and the printer: one use at a time
        self._jobs: dict[str, PaymentJob] = {}
        self._latest: dict[str, PaymentJob] = {}  # protocol -> its latest job
        self._readiness = DeviceReadiness("unknown", "", None, "unknown", "", None)
        self._last_poll = float("-inf")
        self._polling = threading.Event()
        self.recovery_note: dict[str, str] = {}  # protocol -> what the last recovery found (its evidence)
        self._printing: set[str] = set()  # protocols whose receipts are being printed on request

    # ------------------------------------------------------------------ hardware
    def _terminal(self, events: PaymentEvents) -> tuple[SerialChannel, ZvtPaymentTerminal]:
        t = self.config.terminal
        channel = SerialChannel(t.url, LineSettings(baudrate=t.baudrate))
        terminal = ZvtPaymentTerminal(
            channel, self.clock, t.password, t.currency, on_display=events.terminal_shows
        )
        return channel, terminal

    def _printer(self) -> EscposPrinter:
        return EscposPrinter(
            self.config.printer.url, profile_by_name(self.config.printer.profile), self.clock
        )

    def receipt_service(self, printer: EscposPrinter | None = None) -> ReceiptService:
        settings = ReceiptSettings(
            verify_base_url=self.config.server.url, timezone=self.config.device.timezone
        )
        return ReceiptService(
            self.sessions,
            printer or self._printer(),
            self.identity,
            self.clock,
            settings,
            unit=self.config.device.unit,
        )

    @contextlib.contextmanager
    def _using_hardware(self) -> Iterator[None]:
        with self._hardware:
            self._set_readiness(terminal_state="busy")
            try:
                yield
            finally:
                if self._readiness.terminal_state == "busy":
                    self._set_readiness(terminal_state="unknown")

    def _set_readiness(self, **changes: Any) -> None:
        values = {**self._readiness.__dict__, **changes}
        self._readiness = DeviceReadiness(**values)
        self.bus.notify()

    def readiness(self) -> DeviceReadiness:
        return self._readiness

    def request_poll(self) -> None:
        """A screen is open: have the terminal and the printer asked on a thread of their own, when due (the
        screen's live stream never waits for a device)."""
        if self.clock.monotonic() - self._last_poll < self.config.officer.status_poll_s or self._polling.is_set():
            return
        self._polling.set()

        def run() -> None:
            try:
                self.poll_devices()
            except Exception as exc:  # a device that fails to answer is a state, never a crash
                log_event(log, "officer_app.poll_failed", error=str(exc)[:200])
            finally:
                self._polling.clear()

        threading.Thread(target=run, name="device-poll", daemon=True).start()

    def poll_devices(self) -> None:
        """Ask the terminal (05 01) and the printer (DLE EOT) how they are, at most every ``status_poll_s``
        and only when nothing else uses them (a screen being open asks for it)."""
        if self.clock.monotonic() - self._last_poll < self.config.officer.status_poll_s:
            return
        if not self._hardware.acquire(blocking=False):
            return
        try:
            self._last_poll = self.clock.monotonic()
            now = self.clock.now()
            printer = self._printer()
            try:
                st = printer.status()
            finally:
                printer.close()
            blocked, warning = st.blocking_reason(), st.warning()
            p_state = (
                "problem"
                if blocked
                else "near_end"
                if warning == "paper near end"
                else "unknown"
                if warning
                else "ready"
            )
            try:
                channel, terminal = self._terminal(PaymentEvents(self.clock))
            except ChannelError as exc:
                t_state, t_text = "problem", str(exc)
            else:
                try:
                    status = terminal.status()
                    t_state, t_text = ("ready" if status.ready else "problem"), status.text
                except Exception as exc:  # an unreachable or refusing terminal is a state to show
                    t_state, t_text = "problem", str(exc)
                finally:
                    channel.close()
            self._readiness = DeviceReadiness(t_state, t_text, now, p_state, blocked or warning or "", now)
            self.bus.notify()
        finally:
            self._hardware.release()

    # ------------------------------------------------------------------ jobs
    def job(self, protocol_number: str) -> PaymentJob | None:
        with self._lock:
            return self._latest.get(protocol_number)

    def start(self, protocol_number: str, key: str, badge: str) -> PaymentJob | PayRequest:
        """Start paying ``protocol_number`` under ``key``, or return the job (or, after a restart, the stored
        request) that ``key`` already started; a job of the protocol that is running is joined."""
        if not KEY.match(key):
            raise DeskRefused("pay key: 32 hexadecimal characters, made when the page was drawn")
        with self._lock:
            with self.sessions() as s:
                known = s.get(PayRequest, key)
                protocol = s.get(Protocol, protocol_number)
            if known is not None:
                if known.protocol_number != protocol_number:
                    raise DeskRefused("this pay key belongs to another protocol")
                return self._jobs.get(known.job_id) or known
            if protocol is None:
                raise DeskRefused(f"protocol {protocol_number!r} does not exist on this device")
            if protocol.driver_agreed_at is None:
                raise DeskRefused("the driver has not agreed to the simplified procedure yet")
            running = self._latest.get(protocol_number)
            job = running if running is not None and not running.finished else None
            fresh = job is None
            if job is None:
                job = PaymentJob(str(uuid.uuid4()), protocol_number, badge, self.clock.now())
            with transaction(self.sessions) as s:
                s.add(
                    PayRequest(
                        key=key, protocol_number=protocol_number, job_id=job.id, attempt_id=job.attempt_id,
                        badge=badge, created_at=self.clock.now(),
                    )
                )  # fmt: skip
            if not fresh:
                log_event(log, "officer_app.pay_joined", protocol=protocol_number, job=job.id)
                return job
            self._jobs[job.id] = job
            self._latest[protocol_number] = job
        log_event(log, "officer_app.pay_started", protocol=protocol_number, job=job.id)
        threading.Thread(target=self._run, args=(job,), name=f"pay-{protocol_number}", daemon=True).start()
        self.bus.notify()
        return job

    def _on_event(self, job: PaymentJob, event: PaymentEvent) -> None:
        if isinstance(event, StepStarted):
            job.step = event.step.value
            job.terminal_text, job.terminal_code = None, None
        elif isinstance(event, TerminalShows):
            job.terminal_text = event.text
            job.terminal_code = event.code if event.code is not None else _CODE_OF_TEXT.get(event.text)
        elif isinstance(event, StateChanged) and event.before is None and job.attempt_id is None:
            job.attempt_id = event.attempt_id
            with transaction(self.sessions) as s:
                for row in s.scalars(select(PayRequest).where(PayRequest.job_id == job.id)):
                    row.attempt_id = event.attempt_id
        self.bus.notify()

    def _run(self, job: PaymentJob) -> None:
        events = PaymentEvents(self.clock)
        events.subscribe(lambda event: self._on_event(job, event))
        with self._using_hardware():
            printer = self._printer()
            try:
                self._pay(job, events, printer)
                if job.paid is not None:
                    self._print(job.protocol_number, printer, job)
            finally:
                printer.close()
                job.finished = True
                self.bus.notify()

    def _pay(self, job: PaymentJob, events: PaymentEvents, printer: EscposPrinter) -> None:
        try:
            channel, terminal = self._terminal(events)
        except ChannelError as exc:
            job.outcome, job.error_kind, job.message = "not_paid", "TerminalNotReady", str(exc)
            self._set_readiness(
                terminal_state="problem", terminal_text=str(exc), terminal_at=self.clock.now()
            )
            return
        try:
            workflow = PaymentWorkflow(
                self.sessions, terminal, DriverPrinterCheck(printer), WebOfficerDesk(job, self.bus.notify),
                self.clock, job.badge, events=events, card_timeout_s=self.config.officer.card_timeout_s,
                timezone=self.config.device.timezone,
            )  # fmt: skip
            job.workflow = workflow
            if job.cancel_requested:
                workflow.cancel()
            job.paid = workflow.pay(job.protocol_number)
            job.outcome = "paid"
        except PaymentError as exc:
            job.error_kind, job.message = type(exc).__name__, str(exc)
            job.outcome = {"PaymentInDoubt": "in_doubt", "PaymentAborted": "aborted"}.get(
                job.error_kind, "not_paid"
            )
        except Exception as exc:  # a fault of ours must not leave the page waiting for ever
            log.exception("officer_app.pay_failed", extra={"event": "officer_app.pay_failed", "job": job.id})
            job.outcome, job.error_kind, job.message = "error", type(exc).__name__, str(exc)
        finally:
            channel.close()
        log_event(
            log,
            "officer_app.pay_finished",
            protocol=job.protocol_number,
            outcome=job.outcome,
            kind=job.error_kind,
        )

    def answer(self, protocol_number: str, yes: bool) -> None:
        job = self.job(protocol_number)
        if job is None or job.question is None:
            raise DeskRefused("there is no question to answer")
        job._answer_value = yes
        job._answer.set()

    def cancel(self, protocol_number: str) -> None:
        job = self.job(protocol_number)
        if job is None or job.finished:
            raise DeskRefused("no payment is running")
        job.cancel_requested = True
        if job.workflow is not None:
            job.workflow.cancel()
        log_event(log, "officer_app.pay_cancel", protocol=protocol_number, step=job.step)
        self.bus.notify()

    # ------------------------------------------------------------------ receipts
    def _print(self, protocol_number: str, printer: EscposPrinter, job: PaymentJob | None = None) -> None:
        service = self.receipt_service(printer)
        holder = job or self.job(protocol_number)
        if holder is not None:
            holder.printing = True
        self.bus.notify()
        try:
            service.print_receipts(service.payment_for_protocol(protocol_number))
        except ReceiptError as exc:
            log_event(log, "officer_app.receipts_refused", protocol=protocol_number, error=str(exc))
        finally:
            if holder is not None:
                holder.printing = False
            self.bus.notify()

    def printing(self, protocol_number: str) -> bool:
        return protocol_number in self._printing

    def _in_background(self, name: str, work: Callable[[], None], receipts_of: str | None = None) -> None:
        if receipts_of is not None:
            self._printing.add(receipts_of)

        def run() -> None:
            try:
                with self._using_hardware():
                    work()
            except Exception:
                log.exception(
                    "officer_app.background_failed",
                    extra={"event": "officer_app.background_failed", "work": name},
                )
            finally:
                if receipts_of is not None:
                    self._printing.discard(receipts_of)
                self.bus.notify()

        threading.Thread(target=run, name=name, daemon=True).start()

    def print_missing(self, protocol_number: str) -> None:
        """Print every copy not yet confirmed (after a paper change: "Continue")."""

        def work() -> None:
            printer = self._printer()
            try:
                self._print(protocol_number, printer)
            finally:
                printer.close()

        self._in_background(f"receipts-{protocol_number}", work, protocol_number)

    def duplicate(self, protocol_number: str, copy_no: int) -> None:
        """A numbered duplicate of one copy, on request."""
        if copy_no not in (1, 2):
            raise DeskRefused("copy must be 1 or 2")

        def work() -> None:
            printer = self._printer()
            try:
                self.receipt_service(printer).reprint(protocol_number, copy_no)
            finally:
                printer.close()

        self._in_background(f"duplicate-{protocol_number}", work, protocol_number)

    # ------------------------------------------------------------------ recovery
    def unsettled(self) -> bool:
        journal = AttemptJournal(self.sessions, self.clock)
        return bool(journal.with_states(RESULT_UNKNOWN | BEFORE_AUTHORISATION))

    def recover(self, background: bool = True) -> None:
        """Ask the terminal about attempts whose result is unknown (a crash, a lost line), as ``pay`` does
        first: what it finds is settled and recorded; the rest stays in doubt with what was learnt."""

        def work() -> None:
            events = PaymentEvents(self.clock)
            events.subscribe(lambda _event: self.bus.notify())
            journal = AttemptJournal(self.sessions, self.clock, events)
            try:
                channel, terminal = self._terminal(events)
            except ChannelError as exc:
                Recovery(self.sessions, None, self.clock, journal, self.config.device.timezone).reconcile()
                log_event(log, "officer_app.recovery_no_terminal", error=str(exc))
                return
            try:
                recovery = Recovery(self.sessions, terminal, self.clock, journal, self.config.device.timezone)
                terminal.on_stray_result = recovery.take_stray
                found = recovery.reconcile()
            except Exception as exc:
                log_event(log, "officer_app.recovery_failed", error=str(exc))
                return
            finally:
                channel.close()
            for s in found.settled:
                self.recovery_note[s.protocol_number] = found.evidence
            if found.evidence:
                for attempt in journal.result_unknown():
                    self.recovery_note[attempt.protocol_number] = found.evidence
            log_event(log, "officer_app.recovered", settled=len(found.settled), in_doubt=len(found.in_doubt))

        if background:
            self._in_background("recovery", work)
        else:
            with self._using_hardware():
                work()
