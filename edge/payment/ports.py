"""The payment workflow's ports: the card terminal (``PaymentTerminal``), the printer readiness check
(``PrinterCheck``) and the officer's decisions (``OfficerDesk``). Adapters implement them; ZVT is the first
terminal adapter, the receipts module provides the printer check on the real printer driver.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.money import Money


class Readiness(enum.StrEnum):
    READY = "ready"
    WARNING = "warning"  # printing will work but needs attention soon (paper near end)
    BLOCKED = "blocked"  # receipts cannot be printed: do not take money


@dataclass(frozen=True, slots=True)
class PrinterReadiness:
    state: Readiness
    reason: str = ""


class PrinterCheck(Protocol):
    def check(self) -> PrinterReadiness: ...


@dataclass(frozen=True, slots=True)
class TerminalStatus:
    ready: bool
    code: int
    text: str
    software: str | None = None


@dataclass(frozen=True, slots=True)
class CardRead:
    """What Read Card told us about the presented card (no full PAN ever)."""

    masked_pan: str
    scheme: str
    expiry: str
    card_hash: str  # hex of ZVT 1F14; "" when the terminal gave none
    holder_name: str | None  # from track 1; None on chip/contactless reads

    @property
    def last4(self) -> str:
        return self.masked_pan[-4:]


@dataclass(frozen=True, slots=True)
class TerminalResult:
    """One transaction result (04 0F) as the terminal reported it."""

    approved: bool
    result_code: int
    amount_minor: int | None
    currency: int | None
    trace_no: int | None
    receipt_no: int | None
    original_trace: int | None
    terminal_id: str
    terminal_time: str
    auth_code: str
    masked_pan: str
    scheme: str
    expiry: str
    card_hash: str
    raw_hex: str

    @property
    def is_reversal(self) -> bool:
        return self.original_trace is not None


ResultSink = Callable[[TerminalResult], bool]
"""Called with a transaction result BEFORE it is acknowledged: commit it, return True to accept or False to
make the terminal reverse it. An exception leaves the result unanswered (the terminal reverses it)."""


@dataclass(frozen=True, slots=True)
class TerminalTotals:
    """An End-of-Day's totals of the batch it closed: what the terminal booked since the previous one."""

    total_minor: int
    count: int | None  # transactions (None: the terminal sent no per-group counts)
    receipt_from: int | None
    receipt_to: int | None
    terminal_time: str
    raw_hex: str


TotalsSink = Callable[[TerminalTotals], bool]
"""Called with the End-of-Day totals BEFORE they are acknowledged: commit them (and what they settle)."""


@dataclass(frozen=True, slots=True)
class AuthorisationOutcome:
    approved: bool
    result: TerminalResult | None
    accepted: bool  # our acceptance reached the terminal
    result_code: int  # 0 when approved


class TerminalRefused(Exception):
    """The terminal ended the command without success (06 1E or 84 xx); ``code`` is the ZVT result code."""

    def __init__(self, what: str, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{what}: {text} (result code 0x{code:02X})")


class TerminalUnreachable(Exception):
    """The line failed or the terminal went silent: the outcome of the running command is unknown."""


class PaymentTerminal(Protocol):
    on_stray_result: ResultSink | None
    """Takes a result the terminal sends when no command expects one (see ``hardware.zvt.session``)."""

    def register(self) -> None: ...

    def status(self) -> TerminalStatus: ...

    def read_card(self, timeout_s: int = 60) -> CardRead: ...

    def authorise(self, amount: Money, on_result: ResultSink) -> AuthorisationOutcome: ...

    def reverse(self, receipt_no: int, on_result: ResultSink) -> TerminalResult | None: ...

    def abort(self) -> None: ...

    def cancel(self) -> None:
        """Ask the command that is running (Read Card, Authorisation) to stop: the terminal is sent 06 B0 at
        once; it may refuse during an Authorisation. Returns at once, from any thread."""
        ...

    def end_of_day(self, on_totals: TotalsSink) -> TerminalTotals | None: ...

    def repeat_receipt(self, on_result: ResultSink) -> TerminalResult | None:
        """The terminal's last receipt, given to ``on_result`` before it is acknowledged; None when the
        terminal has none; ``TerminalRefused`` when it does not support Repeat Receipt (84 83)."""
        ...


class PromptUnanswered(Exception):
    """An officer's question could not be answered (end of input, interrupted): the payment must stop."""


class OfficerDesk(Protocol):
    """The officer's decisions during the own-card check (CLI prompt, officer web UI); a question that
    cannot be answered raises ``PromptUnanswered``."""

    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool: ...

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool: ...
