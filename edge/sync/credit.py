"""The device's side of admission by credit: how many records it may publish now, per connection.

The server's ingest grants records (``server.ingest.admission``); the sender publishes only within its grant
and asks again when it is used up. A server that never answers an ask (an ingest without admission, or a worker
that lost the ask) is not waited on: after ``probe_s`` without any answer on this connection the sender sends
as before, within its window (``UNMETERED``). Every (re)connect starts over.

    NO_LINK ──connected (credit: the records in flight at the loss)──▶ READY
    READY ──rows due, credit under half the last grant: ask──▶ ASKING
    ASKING ──credit n>0──▶ READY (credit += n)      ASKING ──credit 0──▶ QUEUED ──credit n>0──▶ READY
    ASKING ──no answer within reask_s (doubling each time): ask again──▶ ASKING
    ASKING ──no answer on this connection within probe_s──▶ UNMETERED ──a late credit──▶ READY
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CreditState(StrEnum):
    """Where the conversation about credit stands; the credit held is counted beside it."""

    NO_LINK = "no_link"  # not connected: nothing is sent
    READY = "ready"  # no ask out (the credit held, if any, is being spent)
    ASKING = "asking"  # an ask is out, not yet answered
    QUEUED = "queued"  # the server answered 0: a grant will follow
    UNMETERED = "unmetered"  # the server never answered on this connection: the window alone limits


TRANSITIONS: dict[CreditState, frozenset[CreditState]] = {
    CreditState.NO_LINK: frozenset({CreditState.READY, CreditState.UNMETERED}),
    CreditState.READY: frozenset({CreditState.ASKING, CreditState.READY, CreditState.NO_LINK}),
    CreditState.ASKING: frozenset(
        {CreditState.READY, CreditState.ASKING, CreditState.QUEUED, CreditState.UNMETERED, CreditState.NO_LINK}
    ),
    CreditState.QUEUED: frozenset({CreditState.READY, CreditState.ASKING, CreditState.NO_LINK}),
    CreditState.UNMETERED: frozenset({CreditState.READY, CreditState.NO_LINK}),
}


class BadCreditTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class CreditSettings:
    enabled: bool = True  # False: never ask, send within the window alone (as against a server without it)
    reask_s: float = 5.0  # an ask not answered within this is sent again (lost in a broker restart), then
    # after twice as long each time: a slow answer must not bring more asks
    probe_s: float = 15.0  # no answer to any ask on this connection within this: send unmetered
    requeue_s: float = 60.0  # queued this long without a grant (a worker restarted and lost it): ask again
    resend_valid_s: float = 3.0  # after a reconnect, the records in flight at the loss may be resent this long


class SendCredit:
    """The sender's credit on the current connection: ``allowance`` says how many records it may publish,
    ``should_ask`` whether to ask for more (when none is left, or half of the last grant: the next grant
    arrives while the rest is being sent)."""

    def __init__(self, settings: CreditSettings) -> None:
        self.settings = settings
        self.state = CreditState.NO_LINK
        self._records = 0
        self._last_grant = 0
        self._expires = 0.0  # monotonic time the credit held lapses
        self._since = 0.0  # monotonic time of the last ask (ASKING) or queued answer (QUEUED)
        self._first_ask: float | None = None  # monotonic time of the first ask on this connection
        self._unanswered_asks = 0  # asks in a row without an answer
        self._answered = False  # the server answered an ask on this connection

    def _to(self, state: CreditState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise BadCreditTransition(f"credit {self.state} -> {state}")
        self.state = state

    def connected(self, resend: int = 0, now: float = 0.0) -> None:
        """A new connection: nothing granted on it yet (a sender without admission never asks), but the
        ``resend`` records that were in flight when the last link dropped may go out again at once: they were
        admitted on that link, and the server stopped counting their grants when it saw the broker go (a
        grant of theirs still counted there lapses). Without that, records already sent once would wait for
        a grant behind the whole fleet's backlog."""
        self.lost()
        self._answered, self._first_ask, self._unanswered_asks = False, None, 0
        self._to(CreditState.READY if self.settings.enabled else CreditState.UNMETERED)
        if resend > 0 and self.state is CreditState.READY:
            self._records = self._last_grant = resend
            self._expires = now + self.settings.resend_valid_s

    def lost(self) -> None:
        """The connection is gone, and with it any credit (every state may lose its link)."""
        self._records = self._last_grant = 0
        self.state = CreditState.NO_LINK

    def allowance(self, now: float) -> int | None:
        """Records it may publish now: None = no limit but the window (UNMETERED), 0 = none."""
        if self._unanswered(now):
            self._to(CreditState.UNMETERED)
        if self.state in (CreditState.UNMETERED, CreditState.NO_LINK):
            return None if self.state is CreditState.UNMETERED else 0
        if self._records and now >= self._expires:
            self._records = 0  # lapsed: the server no longer counts it either
        return self._records

    def _unanswered(self, now: float) -> bool:
        first = self._first_ask
        return (
            self.state is CreditState.ASKING and not self._answered and first is not None
            and now - first >= self.settings.probe_s
        )  # fmt: skip

    def should_ask(self, now: float) -> bool:
        """True if an ask should go out now, records being due."""
        if self.state is CreditState.READY:
            return self._records <= self._last_grant // 2
        if self.state is CreditState.ASKING:
            return now >= self._reask_at()
        return self.state is CreditState.QUEUED and now - self._since >= self.settings.requeue_s

    def next_due(self) -> float | None:
        """The monotonic time the credit changes without a message (an ask to send again, the probe's end), or
        None: a sender stepped on events alone must be stepped then too."""
        if self.state is CreditState.ASKING:
            probe = self._first_ask + self.settings.probe_s if self._first_ask is not None else None
            reask = self._reask_at()
            return reask if probe is None or self._answered else min(reask, probe)
        if self.state is CreditState.QUEUED:
            return self._since + self.settings.requeue_s
        return None  # a lapse needs no step: ``allowance`` sees it when records are next sent

    def _reask_at(self) -> float:
        return self._since + self.settings.reask_s * 2.0 ** min(max(self._unanswered_asks - 1, 0), 10)

    def asked(self, now: float) -> None:
        self._unanswered_asks += 1
        self._since = now
        if self._first_ask is None:
            self._first_ask = now
        self._to(CreditState.ASKING)

    def spent(self, records: int) -> None:
        """``records`` were published under the credit."""
        self._records = max(0, self._records - records)

    def granted(self, records: int, valid_s: float, now: float) -> None:
        """The server's answer: ``records`` (0 = queued) valid for ``valid_s`` seconds."""
        if self.state is CreditState.NO_LINK:
            return  # an answer to an ask of a connection that is gone
        self._answered = True
        self._unanswered_asks = 0
        if records > 0:
            self._records += records
            self._last_grant = records
            self._expires = now + valid_s
            self._to(CreditState.READY)
        elif self.state is CreditState.ASKING:
            self._since = now
            self._to(CreditState.QUEUED)
