"""ZVT session (ECR side): master rights, T3 for the command acknowledgement, T4 for the result (re-armed by
every 04 FF and 04 0F), the answers to terminal messages, and Completion parsed by context.

A flow reads like the spec's sequence diagram: send the command, take ``80 00``, then answer 04 FF / 04 0F /
print messages until the Completion (06 0F), the Abort (06 1E), or, for Read Card, the 04 0F itself.

Which messages the session answers ``80 00 00`` by itself, and why (zvt.md §10, §12):

- The terminal books a transaction only when the ECR answers its 04 0F positively; no answer, or ``84 yy``,
  makes it reverse (P015 §2.2.8–2.2.9). So a 04 0F that is a transaction result (Authorisation, Reversal,
  Repeat Receipt, End-of-Day: ``Result.TRANSACTION``) is answered only by the caller's handler, after the
  caller saved it. Running such a command without a handler is refused before anything is sent.
- A 04 0F that arrives when no running command expects one (while a command waits for its ``80 00``, during
  a Status Enquiry, a second different result in one command, a booking during Read Card) is stray. Of the two
  possible answers, saving it first as the result of the attempt it belongs to, or leaving it unacknowledged,
  the spec makes the first right when the result can be attributed and the second right otherwise:
  * by the master-rights rule (P016 §5.1) the terminal only speaks while it holds master rights, so a stray
    04 0F is the result of a transaction the ECR started and lost (line cut, T4 expired, process killed), the
    terminal still finishing it; answering it finishes the spec's own sequence late, and the commit rule
    (P015 §2.2.8, zvt.md §12) applies unchanged: save, then ``80 00 00``. ``on_stray_result`` does that: the
    caller matches it to the one attempt whose result is unknown (trace, amount, card 1F14, time), commits
    it, and only then says yes;
  * a 04 0F is parsed by context and a stray one has none: when it matches no such attempt, or more than
    one, acknowledging it would book money no protocol owns. It is answered ``84 66 00`` (not accepted: the
    terminal reverses it, P015 §3.1), and the caller keeps it as evidence, since some terminals book even
    without the ECR's answer (Portalum #59, zvt.md §12). Without ``on_stray_result`` every stray result is
    answered so. Never acknowledge a result that is not saved.
- 04 FF (display), 06 0F (Completion), 06 1E (Abort) and print lines (06 D1/D3) move no money: the booking
  was decided by the answer to the 04 0F. They are acknowledged at once, stray ones included, so that a
  terminal finishing an earlier sequence is not left repeating them.
- A Read Card 04 0F carries card data and books nothing: the session acknowledges it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core.clock import Clock
from core.structured_log import log_event
from hardware.zvt.apdu import Apdu, decode_apdu
from hardware.zvt.commands import (
    ACK_APDU,
    AbortNotice,
    Command,
    CommandAck,
    Completion,
    Flow,
    IntermediateStatus,
    Result,
    StatusInformation,
    abort,
    negative_apdu,
    parse_abort_notice,
    parse_command_ack,
    parse_completion,
    parse_intermediate,
    parse_status_information,
    reverse_request_apdu,
)
from hardware.zvt.errors import ApduError, CommandRejected, ResponseTimeout
from hardware.zvt.link import Link

log = logging.getLogger(__name__)

StatusInfoHandler = Callable[[StatusInformation], bytes]
IntermediateHandler = Callable[[IntermediateStatus], None]


class SessionTimeout(ResponseTimeout):
    """T3 or T4 expired: the terminal did not finish the command in time."""


@dataclass(frozen=True, slots=True)
class SessionTimers:
    t3: float = 5.0  # command → 80 00 / 84 xx
    t4: float = 180.0  # 80 00 → Completion, re-armed by 04 FF and 04 0F
    slice: float = 0.1  # how often a waiting session looks for an abort request


@dataclass
class Outcome:
    """Everything the terminal said while running one command."""

    command: Command
    ack: CommandAck
    intermediates: list[IntermediateStatus] = field(default_factory=list)
    status_infos: list[StatusInformation] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)
    completion: Completion | None = None
    abort_notice: AbortNotice | None = None
    abort_answer: CommandAck | None = None
    strays: list[bytes] = field(default_factory=list)

    @property
    def last_status(self) -> StatusInformation | None:
        return self.status_infos[-1] if self.status_infos else None


@dataclass(frozen=True, slots=True)
class StrayResult:
    """A 04 0F no running command expected, and what the session answered it."""

    info: StatusInformation
    reply: bytes
    during: str

    @property
    def accepted(self) -> bool:
        return self.reply == ACK_APDU


# Messages that move no money: acknowledged whenever they come (see the module docstring).
_NO_MONEY = {(0x04, 0xFF), (0x06, 0x0F), (0x06, 0x1E), (0x06, 0xD1), (0x06, 0xD3)}
_WAKE = (0x00, 0x00)  # made by ``_receive`` when an abort was requested: no message at all


class ZvtSession:
    """Runs one command at a time over a ``Link``; the ECR is master between commands."""

    def __init__(
        self,
        link: Link,
        clock: Clock,
        timers: SessionTimers | None = None,
        on_intermediate: IntermediateHandler | None = None,
        on_stray_result: StatusInfoHandler | None = None,
    ) -> None:
        self.link = link
        self.clock = clock
        self.timers = timers or SessionTimers()
        self.on_intermediate = on_intermediate
        self.on_stray_result = on_stray_result
        self._abort_requested = threading.Event()
        self.last_delivered_reply: tuple[StatusInformation, bytes] | None = None
        self.stray_results: list[StrayResult] = []

    def request_abort(self) -> None:
        """Ask the running command to stop (06 B0); the terminal may refuse during an Authorisation. Asked
        between two commands (another thread's request racing the start of one), it applies to the next one;
        every command clears it when it ends."""
        self._abort_requested.set()

    def run(self, command: Command, on_status_info: StatusInfoHandler | None = None) -> Outcome:
        if command.result is Result.TRANSACTION and on_status_info is None:
            raise ValueError(
                f"{command.name}: its 04 0F is a transaction result; pass a handler that saves it before it "
                "is acknowledged"
            )
        self.last_delivered_reply = None
        try:
            log_event(log, "zvt.command.sent", command=command.name)
            self.link.send(command.encode())
            outcome = Outcome(command, self._await_ack(command))
            if outcome.ack.positive is False:
                raise CommandRejected(command.name, outcome.ack.code, outcome.ack.data.hex(" ").upper())
            if command.flow is Flow.ACK_ONLY:
                return outcome
            self._await_result(command, outcome, on_status_info)
            return outcome
        finally:
            self._abort_requested.clear()

    def _await_ack(self, command: Command) -> CommandAck:
        deadline = self.clock.monotonic() + self.timers.t3
        while True:
            apdu = self._receive(deadline, f"{command.name}: no 80 00 within T3 {self.timers.t3:g} s")
            if apdu.command == _WAKE:
                continue
            ack = parse_command_ack(apdu)
            if ack is not None:
                return ack
            self._unsolicited(apdu, f"{command.name} acknowledgement")

    def _unsolicited(self, apdu: Apdu, during: str) -> None:
        """Answer a message that belongs to no running command (an earlier sequence still finishing)."""
        log_event(log, "zvt.stray_message", waiting_for=during, apdu=apdu.label)
        if apdu.command == (0x04, 0x0F):
            self._stray_result(apdu, during)
        elif apdu.command in _NO_MONEY:
            self.link.send(ACK_APDU)
        else:
            self.link.send(negative_apdu(0x83))

    def _stray_result(self, apdu: Apdu, during: str) -> bytes:
        """A 04 0F nobody asked for: acknowledged only if ``on_stray_result`` saved it (module docstring)."""
        try:
            info = parse_status_information(apdu)
        except ApduError as exc:
            log_event(log, "zvt.stray_result.malformed", error=str(exc), raw=apdu.encode().hex())
            reply = reverse_request_apdu(0x9A)
            self.link.send(reply)
            return reply
        reply = self.on_stray_result(info) if self.on_stray_result is not None else reverse_request_apdu()
        self.stray_results.append(StrayResult(info, reply, during))
        self.link.send(reply)
        log_event(
            log,
            "zvt.stray_result",
            during=during,
            result_code=info.result_code,
            trace=info.trace,
            amount=info.amount_minor,
            answer=reply.hex(),
        )
        return reply

    def _receive(self, deadline: float, why: str) -> Apdu:
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise SessionTimeout(why)
            try:
                raw = self.link.receive(min(remaining, self.timers.slice))
            except ResponseTimeout:
                if self._abort_requested.is_set():
                    return Apdu(*_WAKE)  # wake the caller to send the abort
                continue
            try:
                return decode_apdu(raw)
            except ApduError as exc:
                log_event(log, "zvt.malformed_apdu", error=str(exc), raw=raw.hex())
                self.link.send(negative_apdu(0x9A))

    def _await_result(self, command: Command, outcome: Outcome, handler: StatusInfoHandler | None) -> None:
        t4 = self.timers.t4
        deadline = self.clock.monotonic() + t4
        last_info: tuple[bytes, bytes] | None = None
        abort_sent = False
        while True:
            if self._abort_requested.is_set() and not abort_sent:
                abort_sent = True
                log_event(log, "zvt.abort.sent", during=command.name)
                self.link.send(abort().encode())
            apdu = self._receive(deadline, f"{command.name}: no result within T4 {t4:g} s")
            if apdu.command == _WAKE:
                continue
            if apdu.command == (0x04, 0xFF):
                status = parse_intermediate(apdu)
                outcome.intermediates.append(status)
                self.link.send(ACK_APDU)
                if status.timeout_minutes:
                    t4 = status.timeout_minutes * 60.0
                deadline = self.clock.monotonic() + t4
                log_event(log, "zvt.intermediate", command=command.name, code=status.code)
                if self.on_intermediate is not None:
                    self.on_intermediate(status)
            elif apdu.command == (0x04, 0x0F):
                raw = apdu.encode()
                deadline = self.clock.monotonic() + t4
                if last_info is not None and last_info[0] == raw:
                    # a lost link ACK made the terminal repeat it: the same answer again, nothing saved twice
                    log_event(log, "zvt.status_info.duplicate", command=command.name)
                    self.link.send(last_info[1])
                    continue
                if not self._expects_result(command, apdu, answered=last_info is not None):
                    outcome.strays.append(raw)
                    self._stray_result(apdu, command.name)
                    continue
                try:
                    info = parse_status_information(apdu)
                except ApduError as exc:
                    # cannot be read, so cannot be saved: not accepted, the terminal reverses
                    log_event(log, "zvt.status_info.malformed", command=command.name, error=str(exc))
                    self.link.send(reverse_request_apdu(0x9A))
                    continue
                reply = handler(info) if handler is not None else ACK_APDU
                outcome.status_infos.append(info)
                outcome.replies.append(reply)
                last_info = (raw, reply)
                self.link.send(reply)
                self.last_delivered_reply = (info, reply)
                log_event(log, "zvt.status_info", command=command.name, result_code=info.result_code)
                if command.flow is Flow.STATUS_INFO:
                    return
            elif apdu.command == (0x06, 0x0F):
                self.link.send(ACK_APDU)
                outcome.completion = parse_completion(apdu, command)
                log_event(log, "zvt.completion", command=command.name)
                return
            elif apdu.command == (0x06, 0x1E):
                self.link.send(ACK_APDU)
                outcome.abort_notice = parse_abort_notice(apdu)
                log_event(
                    log, "zvt.aborted", command=command.name, result_code=outcome.abort_notice.result_code
                )
                return
            elif apdu.command in ((0x06, 0xD1), (0x06, 0xD3)):
                self.link.send(ACK_APDU)
            elif (ack := parse_command_ack(apdu)) is not None:
                if abort_sent and outcome.abort_answer is None:
                    outcome.abort_answer = ack
                    log_event(log, "zvt.abort.answer", positive=ack.positive, code=ack.code)
                else:
                    outcome.strays.append(apdu.encode())
            else:
                log_event(log, "zvt.unknown_message", apdu=apdu.label)
                self.link.send(negative_apdu(0x83))

    @staticmethod
    def _expects_result(command: Command, apdu: Apdu, answered: bool) -> bool:
        """Is this 04 0F the running command's own result (else it is stray)?"""
        if command.result is Result.NONE:
            return False
        if command.result is Result.TRANSACTION:
            return not answered  # one result per transaction; a different second one is not this command's
        try:  # Read Card: card data, unless it reports a booking (an earlier payment still finishing)
            return not parse_status_information(apdu).is_transaction_result
        except ApduError:
            return True
