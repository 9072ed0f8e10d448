"""``PaymentTerminal`` adapter for a ZVT terminal on a serial line (or pty / socket:// for the simulator).

What the terminal displays (04 FF: insert card, enter PIN, waiting for host …) goes to ``on_display``; the
adapter makes up no texts of its own. Every transaction result (payment, reversal, last receipt, end-of-day
totals) is handed to the caller's sink before it is acknowledged, and so is a result the terminal sends when
no command expects it (``on_stray_result``; without one it is refused, see ``hardware.zvt.session``).
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
    TerminalTotals,
    TerminalUnreachable,
    TotalsSink,
)
from hardware.zvt import commands as zc
from hardware.zvt.apdu import decode_apdu
from hardware.zvt.commands import IntermediateStatus, StatusInformation, intermediate_text
from hardware.zvt.errors import ApduError, ChannelError, CommandRejected, LinkError, ResponseTimeout
from hardware.zvt.link import ByteChannel, Link
from hardware.zvt.result_codes import result_text, terminal_status_text
from hardware.zvt.session import Outcome, SessionTimers, ZvtSession

# Codes with which a terminal ends an Authorisation before any money moved: reported as a refusal
REFUSAL_CODES = frozenset({0x6F, 0x6C, 0x64, 0x78, 0x9C, 0x83})


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


def result_from_hex(raw_hex: str) -> TerminalResult:
    """A saved 04 0F read back; ``ApduError`` if it is not one."""
    apdu = decode_apdu(bytes.fromhex(raw_hex))
    if apdu.command != (0x04, 0x0F):
        raise ApduError(f"saved result is {apdu.label}, not a 04 0F")
    return to_result(zc.parse_status_information(apdu))


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
        self.on_stray_result: ResultSink | None = None
        self.session = ZvtSession(
            Link(channel, clock),
            clock,
            timers,
            on_intermediate=self._intermediate,
            on_stray_result=self._stray,
        )

    def _intermediate(self, status: IntermediateStatus) -> None:
        self.on_display(intermediate_text(status.code))

    def _stray(self, info: StatusInformation) -> bytes:
        sink = self.on_stray_result
        if sink is None or not sink(to_result(info)):
            return zc.reverse_request_apdu()
        return zc.ACK_APDU

    @staticmethod
    def _answer(sink: ResultSink) -> Callable[[StatusInformation], bytes]:
        return lambda info: zc.ACK_APDU if sink(to_result(info)) else zc.reverse_request_apdu()

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
        return TerminalStatus(code == 0, code, terminal_status_text(code), comp.sw_version if comp else None)

    def read_card(self, timeout_s: int = 60) -> CardRead:
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
            return AuthorisationOutcome(accepted, result, accepted, 0)
        rc = (
            out.abort_notice.result_code
            if out.abort_notice is not None
            else (results[-1][0].result_code if results else 0xFF)
        )
        if rc in REFUSAL_CODES and not results:
            raise TerminalRefused("authorisation", rc, result_text(rc))
        return AuthorisationOutcome(False, results[-1][0] if results else None, False, rc)

    def reverse(self, receipt_no: int, on_result: ResultSink) -> TerminalResult | None:
        out = self._run(zc.reversal(receipt_no, self.password), self._answer(on_result))
        if out.abort_notice is not None:
            rc = out.abort_notice.result_code
            raise TerminalRefused("reversal", rc, result_text(rc))
        return to_result(out.last_status) if out.last_status else None

    def abort(self) -> None:
        self._run(zc.abort())

    def cancel(self) -> None:
        self.session.request_abort()

    def end_of_day(self, on_totals: TotalsSink) -> TerminalTotals | None:
        seen: list[TerminalTotals] = []

        def handler(info: StatusInformation) -> bytes:
            seen.append(to_totals(info))
            return zc.ACK_APDU if on_totals(seen[-1]) else zc.reverse_request_apdu()

        out = self._run(zc.end_of_day(self.password), handler)
        if out.abort_notice is not None and not seen:
            rc = out.abort_notice.result_code
            raise TerminalRefused("end of day", rc, result_text(rc))
        return seen[-1] if seen else None

    def repeat_receipt(self, on_result: ResultSink) -> TerminalResult | None:
        out = self._run(zc.repeat_receipt(self.password), self._answer(on_result))
        if out.abort_notice is not None and not out.status_infos:
            return None
        return to_result(out.last_status) if out.last_status else None


def to_totals(info: StatusInformation) -> TerminalTotals:
    """The End-of-Day 04 0F as totals; a malformed BMP 60 raises ``ApduError`` (then nothing is settled)."""
    totals = zc.parse_end_of_day(info)
    return TerminalTotals(
        total_minor=totals.total_minor,
        count=totals.count,
        receipt_from=totals.receipt_from,
        receipt_to=totals.receipt_to,
        terminal_time=f"{totals.date or ''}{totals.time or ''}",
        raw_hex=info.raw.hex(),
    )
