"""``PaymentTerminal`` adapter for a ZVT terminal on a serial line (or pty / socket:// for the simulator).

Live terminal texts (insert card, enter PIN, waiting for host, approved) go to ``on_display``.
Any line failure or timer expiry while a command runs becomes ``TerminalUnreachable``: outcome unknown.
"""

from __future__ import annotations

from collections.abc import Callable

from core.clock import Clock
from core.money import Money
from edge.payment.ports import (
    AuthorisationOutcome,
    CardRead,
    ResultSink,
    TerminalRefused,
    TerminalResult,
    TerminalStatus,
    TerminalUnreachable,
)
from hardware.zvt import commands as zc
from hardware.zvt.commands import IntermediateStatus, StatusInformation, intermediate_text
from hardware.zvt.errors import ChannelError, CommandRejected, LinkError, ResponseTimeout
from hardware.zvt.link import ByteChannel, Link
from hardware.zvt.session import Outcome, SessionTimers, ZvtSession

RESULT_TEXT: dict[int, str] = {
    0x64: "card not readable",
    0x65: "no card data",
    0x6B: "terminal not registered",
    0x6C: "no card presented or aborted (timeout or abort key)",
    0x6F: "terminal does not accept this currency",
    0x78: "card expired",
    0x79: "card not yet valid",
    0x7A: "card unknown",
    0x83: "function not possible",
    0x9C: "terminal busy, try again",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
}
STATUS_TEXT: dict[int, str] = {
    0x00: "ready",
    0x9C: "busy (please wait)",
    0xCC: "printer not ready",
    0xDC: "card inserted",
    0xDF: "out of order",
    0xF0: "end-of-day required",
    0x51: "initialisation required",
}


def result_text(code: int) -> str:
    if 0x01 <= code <= 0x63:
        return "declined by the card issuer"
    return RESULT_TEXT.get(code, "terminal error")


def to_result(info: StatusInformation) -> TerminalResult:
    time_s = f"{info.date or ''}{info.time or ''}"
    return TerminalResult(
        approved=info.approved and info.original_trace is None,
        result_code=info.result_code,
        amount_minor=info.amount_minor,
        currency=info.currency,
        trace_no=info.trace,
        receipt_no=info.receipt_no,
        original_trace=info.original_trace,
        terminal_id=info.terminal_id or "",
        terminal_time=time_s,
        auth_code=info.auth_code or "",
        masked_pan=display_pan(info.pan),
        scheme=info.card_name or "",
        expiry=info.expiry or "",
        card_hash=(info.card_hash or b"").hex(),
        raw_hex=info.raw.hex(),
    )


def display_pan(pan: str | None) -> str:
    """The PAN as printed and stored: ZVT marks masked digits with the nibble E; they become '*'."""
    return (pan or "").upper().replace("E", "*")


class ZvtPaymentTerminal:
    """ZVT adapter: one session on one line; the channel is reopened after the port comes back."""

    def __init__(
        self,
        channel: ByteChannel,
        clock: Clock,
        password: str = "000000",
        currency: int = zc.KZT_NUMERIC,
        timers: SessionTimers | None = None,
        on_display: Callable[[str], None] | None = None,
    ) -> None:
        self.channel = channel
        self.clock = clock
        self.password = password
        self.currency = currency
        self.on_display = on_display or (lambda text: None)
        self.session = ZvtSession(Link(channel, clock), clock, timers, on_intermediate=self._intermediate)

    def _intermediate(self, status: IntermediateStatus) -> None:
        self.on_display(intermediate_text(status.code))

    def _run(
        self, command: zc.Command, handler: Callable[[StatusInformation], bytes] | None = None
    ) -> Outcome:
        reopen = getattr(self.channel, "reopen", None)
        if reopen is not None and not getattr(self.channel, "is_open", True):
            try:
                reopen()
            except ChannelError as exc:
                raise TerminalUnreachable(str(exc)) from exc
            self.session.link = Link(self.channel, self.clock)
        try:
            return self.session.run(command, handler)
        except CommandRejected as exc:
            raise TerminalRefused(command.name, exc.code, result_text(exc.code)) from exc
        except (ChannelError, LinkError, ResponseTimeout) as exc:
            raise TerminalUnreachable(f"{command.name}: {exc}") from exc

    def register(self) -> None:
        out = self._run(zc.registration(self.password, currency=self.currency))
        if out.abort_notice is not None:
            rc = out.abort_notice.result_code
            raise TerminalRefused("registration", rc, result_text(rc))

    def status(self) -> TerminalStatus:
        out = self._run(zc.status_enquiry(self.password))
        comp = out.completion
        code = comp.terminal_status if comp is not None and comp.terminal_status is not None else 0xFF
        return TerminalStatus(
            code == 0, code, STATUS_TEXT.get(code, f"status 0x{code:02X}"), comp.sw_version if comp else None
        )

    def read_card(self, timeout_s: int = 60) -> CardRead:
        self.on_display("insert card")
        out = self._run(zc.read_card(timeout_s))
        if out.abort_notice is not None:
            rc = out.abort_notice.result_code
            raise TerminalRefused("read card", rc, result_text(rc))
        info = out.last_status
        if info is None or info.result_code != 0:
            rc = info.result_code if info is not None else 0xFF
            raise TerminalRefused("read card", rc, result_text(rc))
        return CardRead(
            masked_pan=display_pan(info.pan),
            scheme=info.card_name or "",
            expiry=info.expiry or "",
            card_hash=(info.card_hash or b"").hex(),
            holder_name=info.holder_name,
        )

    def authorise(self, amount: Money, on_result: ResultSink) -> AuthorisationOutcome:
        results: list[tuple[TerminalResult, bool]] = []

        def handler(info: StatusInformation) -> bytes:
            result = to_result(info)
            accept = on_result(result)
            results.append((result, accept))
            return zc.ACK_APDU if accept else zc.reverse_request_apdu()

        try:
            out = self._run(zc.authorisation(amount.minor, amount.currency.numeric, card_hash=True), handler)
        except TerminalUnreachable:
            delivered = self.session.last_delivered_reply
            if delivered is not None and results and delivered[1] == zc.ACK_APDU and results[-1][0].approved:
                # our acceptance reached the terminal: the payment stands even without a Completion (§12)
                return AuthorisationOutcome(True, results[-1][0], True, 0)
            raise
        if results and results[-1][0].approved:
            result, accepted = results[-1]
            self.on_display("approved" if accepted else "reversed")
            return AuthorisationOutcome(accepted, result, accepted, 0)
        rc = (
            out.abort_notice.result_code
            if out.abort_notice is not None
            else (results[-1][0].result_code if results else 0xFF)
        )
        self.on_display("declined")
        if rc in (0x6F, 0x6C, 0x64, 0x78, 0x9C, 0x83):
            raise TerminalRefused("authorisation", rc, result_text(rc))
        return AuthorisationOutcome(False, results[-1][0] if results else None, False, rc)

    def reverse(self, receipt_no: int) -> TerminalResult | None:
        out = self._run(zc.reversal(receipt_no, self.password))
        if out.abort_notice is not None:
            rc = out.abort_notice.result_code
            raise TerminalRefused("reversal", rc, result_text(rc))
        return to_result(out.last_status) if out.last_status else None

    def abort(self) -> None:
        self._run(zc.abort())
        self.on_display("card released")

    def end_of_day(self) -> TerminalResult | None:
        out = self._run(zc.end_of_day(self.password))
        return to_result(out.last_status) if out.last_status else None

    def repeat_receipt(self) -> TerminalResult | None:
        out = self._run(zc.repeat_receipt(self.password))
        if out.abort_notice is not None:
            return None
        return to_result(out.last_status) if out.last_status else None
