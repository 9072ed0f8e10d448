"""What the payment workflow publishes while it runs: typed events, delivered to subscribers in order.

The command line prints them; the officer app streams them to the browser (Server-Sent Events: ``kind`` is
the event name, ``as_dict()`` its JSON data). A subscriber is a callback (called on the workflow's thread)
or a bounded queue read by another thread (``listen``). A failing or slow subscriber never stops a payment:
a callback's exception is logged, and a full queue drops the event and counts it.

- ``StepStarted``: one of the named steps of ``PaymentWorkflow.pay`` began;
- ``StateChanged``: the attempt moved to a new state (each state at most once per attempt);
- ``Notice``: what the officer should know besides (printer warning, the own-card check's outcome);
- ``TerminalShows``: what the terminal displays (04 FF: insert card, PIN, waiting for host …);
- ``PaymentFinished``: the outcome, in the officer's words, with what to do next when it is not paid.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from core.clock import Clock
from edge.payment.attempt_states import WORDS, AttemptState

log = logging.getLogger(__name__)


class Step(enum.StrEnum):
    """The named steps of a payment, in the order of the ZVT sequence."""

    CHECK_DEVICES = "check_devices"
    OPEN_ATTEMPT = "open_attempt"
    READ_CARD = "read_card"
    OWN_CARD_CHECK = "own_card_check"
    AUTHORISE = "authorise"
    RECORD = "record"


STEP_WORDS = {
    Step.CHECK_DEVICES: "checking printer and terminal",
    Step.OPEN_ATTEMPT: "opening the payment attempt",
    Step.READ_CARD: "reading the card",
    Step.OWN_CARD_CHECK: "checking that the card is the driver's own",
    Step.AUTHORISE: "authorising the payment",
    Step.RECORD: "recording the payment",
}


@dataclass(frozen=True, slots=True)
class StepStarted:
    kind: ClassVar[str] = "step"
    protocol_number: str
    step: Step
    at: datetime

    def words(self) -> str:
        return STEP_WORDS[self.step]


@dataclass(frozen=True, slots=True)
class StateChanged:
    kind: ClassVar[str] = "state"
    protocol_number: str
    attempt_id: str
    before: AttemptState | None
    after: AttemptState
    detail: str
    at: datetime

    def words(self) -> str:
        return f"{WORDS[self.after]}: {self.detail}" if self.detail else WORDS[self.after]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the officer should know that is no state of the attempt (printer warning, own-card check)."""

    kind: ClassVar[str] = "notice"
    protocol_number: str
    text: str
    at: datetime

    def words(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class TerminalShows:
    kind: ClassVar[str] = "terminal"
    text: str
    code: int | None
    at: datetime

    def words(self) -> str:
        return f"terminal: {self.text}"


Outcome = Literal["paid", "not_paid", "in_doubt", "aborted"]


@dataclass(frozen=True, slots=True)
class PaymentFinished:
    kind: ClassVar[str] = "finished"
    protocol_number: str
    attempt_id: str | None
    outcome: Outcome
    message: str
    at: datetime

    def words(self) -> str:
        return self.message


PaymentEvent = StepStarted | StateChanged | Notice | TerminalShows | PaymentFinished


def as_dict(event: PaymentEvent) -> dict[str, Any]:
    """The event as JSON-ready data (the SSE ``data``), with its ``kind`` and ``words``."""
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(event).items()}
    out["kind"] = event.kind
    out["words"] = event.words()
    return out


class Subscription:
    """A bounded queue of events for one reader (an SSE stream); ``close`` ends the subscription."""

    def __init__(self, bus: PaymentEvents, maxsize: int) -> None:
        self._bus = bus
        self.queue: queue.Queue[PaymentEvent] = queue.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: PaymentEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout: float | None = None) -> PaymentEvent | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._bus.unsubscribe(self.offer)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PaymentEvents:
    """The publish side: the workflow publishes, subscribers receive every event in publication order."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[PaymentEvent], None]] = []

    def subscribe(self, callback: Callable[[PaymentEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Callable[[PaymentEvent], None]) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def listen(self, maxsize: int = 256) -> Subscription:
        """A queue that receives every event from now on (for a reader on another thread)."""
        sub = Subscription(self, maxsize)
        self.subscribe(sub.offer)
        return sub

    def publish(self, event: PaymentEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception as exc:  # a subscriber's fault is its own, never the payment's
                log.warning(
                    "payment.event_subscriber_failed",
                    extra={"event": "payment.event_subscriber_failed", "kind": event.kind, "error": str(exc)},
                )

    def terminal_shows(self, text: str, code: int | None = None) -> None:
        """Publish what the terminal displays (the ZVT adapter's ``on_display``)."""
        self.publish(TerminalShows(text, code, self.clock.now()))
