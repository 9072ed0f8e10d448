"""The simulated payment terminal (PT role): answers ZVT commands over the real framing and link layers.

It books a payment only after the ECR acknowledges the 04 0F (else auto-reversal), keeps its own journal of
charges (closed into batches by End-of-Day), and plays the scenario and profile chosen in ``TerminalSettings``.
A card can be presented, a PIN entered or the customer can walk away through the control methods (used by
the CLI and the HTTP API).

With the ``stray_results`` profile an approval the ECR never answered is not reversed at once: it is kept
and sent again, unsolicited, the next time the ECR speaks (while the ECR waits for the 80 00 of its next
command, also on a new connection), until ``stray_hold_s`` passes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import Clock
from core.structured_log import log_event
from hardware.zvt.apdu import Apdu, decode_apdu
from hardware.zvt.bmp import bcd_decode, decode_bmps
from hardware.zvt.commands import (
    ACK_APDU,
    TOTALS_GROUPS,
    abort_notice_apdu,
    completion_apdu,
    individual_totals,
    intermediate_apdu,
    negative_apdu,
    parse_command_ack,
    status_completion_apdu,
    status_information_apdu,
)
from hardware.zvt.errors import ApduError, ChannelError, LinkError, ResponseTimeout, ZvtError
from hardware.zvt.link import ByteChannel, Link, LinkTimers
from hardware.zvt.tlv import Tlv
from simulators.zvt.cards import CardProfile, card
from simulators.zvt.faults import REAL_SETTLE, LineFaults
from simulators.zvt.journal import Charge, ChargeJournal
from simulators.zvt.scenarios import Scenario, TerminalSettings

log = logging.getLogger(__name__)

T4 = 180.0


class _Aborted(Exception):
    """The ECR sent 06 B0 and the terminal accepted it."""


class _WalkedAway(Exception):
    pass


class _EcrMovedOn(Exception):
    """The ECR sent a new command instead of answering our 04 0F (it lost or dropped our result)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__("ECR sent a command instead of answering the result")
        self.raw = raw


@dataclass
class _Held:
    """An approval the ECR has not answered yet (``stray_results`` profile)."""

    charge: Charge
    info: bytes
    until: float  # clock time after which it is auto-reversed


def _is_command(raw: bytes) -> bool:
    try:
        return parse_command_ack(decode_apdu(raw)) is None
    except ApduError:
        return False


# ZVT card type (BMP 8A) → the card group of the End-of-Day individual totals
_CARD_GROUP = {0x05: "girocard", 0x06: "eurocard", 0x0A: "visa"}


class SimulatedTerminal:
    """One terminal on one line; ``serve`` runs until ``stop`` is set."""

    def __init__(
        self,
        line: Any,
        clock: Clock,
        settings: TerminalSettings | None = None,
        journal: ChargeJournal | None = None,
        channel_wrapper: Callable[[ByteChannel], ByteChannel] | None = None,
    ) -> None:
        self.line = line
        self.clock = clock
        self.settings = settings or TerminalSettings()
        self.journal = journal or ChargeJournal()
        self.faults = LineFaults(unplug=line.vanish)
        self._wrap = channel_wrapper
        self._controls: queue.Queue[tuple[str, str]] = queue.Queue()
        self._link: Link | None = None
        self._next_trace = 10
        self.last_card: CardProfile | None = None
        self.display = "ready"
        self.commands_seen: list[str] = []
        self.stray_answers: list[str] = []  # the ECR's answers to results sent unsolicited (hex)
        self._held: _Held | None = None
        self._deferred: list[bytes] = []
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def present_card(self, key: str) -> None:
        """The customer presents card ``key``: to a Read Card waiting for it, and for every next payment."""
        card(key)
        self.settings.card = key
        if not self.settings.auto_present:
            self._controls.put(("card", key))

    def enter_pin(self, pin: str) -> None:
        self._controls.put(("pin", pin))

    def walk_away(self) -> None:
        self._controls.put(("walk_away", ""))

    def state(self) -> dict[str, Any]:
        return {
            "display": self.display,
            "scenario": self.settings.scenario.value,
            "profile": self.settings.profile,
            "card": self.settings.card,
            "held_result": self._held.charge.trace if self._held is not None else None,
            "stray_answers": list(self.stray_answers),
            "line": self.line.path,
            "commands": list(self.commands_seen),
            "faults_pending": self.faults.pending(),
            "charges": [c.__dict__ for c in self.journal.all()],
        }

    def start(self) -> SimulatedTerminal:
        self._thread = threading.Thread(target=self.serve, name="zvt-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(5)

    # -------------------------------------------------------------------- loop
    def serve(self) -> None:
        while not self.stop_event.is_set():
            link = self._current_link()
            if link is None:
                time.sleep(0.02)
                continue
            try:
                raw = self._deferred.pop(0) if self._deferred else link.poll(0.02)
                if raw is None:
                    self._expire_held()
                    continue
            except ChannelError:
                self._line_down()
                continue
            except LinkError as exc:
                log_event(log, "zvt.sim.link_error", error=str(exc))
                continue
            try:
                if self._held is not None and _is_command(raw):
                    self._offer_held()  # the ECR speaks again: our unanswered result goes first
                self._handle(raw)
            except ChannelError:
                self._line_down()
            except (LinkError, ResponseTimeout, ZvtError) as exc:
                log_event(log, "zvt.sim.transaction_failed", error=str(exc))
                self._abandon()
            finally:
                self.display = "ready"

    def _current_link(self) -> Link | None:
        if self._link is None:
            ch = self.line.channel()
            if ch is None:
                return None
            if self._wrap is not None:
                ch = self._wrap(ch)
            self._link = Link(ch, self.clock, LinkTimers(poll=0.02), self.faults, name="pt")
        return self._link

    def _line_down(self) -> None:
        log_event(log, "zvt.sim.line_down")
        self._abandon()
        self._link = None
        self.line.discard_output()
        time.sleep(0.02)

    _pending: Charge | None = None
    _abort_stash = False

    def _abandon(self) -> None:
        """The ECR never acknowledged the 04 0F: the terminal reverses the transaction on its own, unless the
        ``stray_results`` profile keeps it to offer again."""
        pending, self._pending = self._pending, None
        if pending is None or pending.status != "pending":
            return
        if self.settings.stray_results and self._held is None:
            self._held = _Held(
                pending,
                bytes.fromhex(pending.status_info),
                self.clock.monotonic() + self.settings.stray_hold_s,
            )
            log_event(log, "zvt.sim.result_held", trace=pending.trace)
            return
        self.journal.set_status(pending, "auto_reversed")
        log_event(log, "zvt.sim.auto_reversal", trace=pending.trace)

    def _expire_held(self) -> None:
        held = self._held
        if held is not None and self.clock.monotonic() >= held.until:
            self._held = None
            self.journal.set_status(held.charge, "auto_reversed")
            log_event(log, "zvt.sim.auto_reversal", trace=held.charge.trace, held=True)

    def _offer_held(self) -> None:
        """Send the kept result unsolicited and book or reverse it by the ECR's answer."""
        self._expire_held()
        held, self._held = self._held, None
        if held is None:
            return
        log_event(log, "zvt.sim.stray_result_sent", trace=held.charge.trace)
        self._send(held.info)
        try:
            reply = self._wait_reply()
        except _EcrMovedOn as moved:
            self._deferred.append(moved.raw)
            reply = None
        self.stray_answers.append(reply.hex() if reply is not None else "")
        self._settle(held.charge, reply)

    def _settle(self, charge: Charge, reply: bytes | None) -> None:
        """The ECR's answer to a result decides: 80 00 / 84 00 books, 84 xx reverses, nothing auto-reverses."""
        if reply is None:
            self.journal.set_status(charge, "auto_reversed")
            log_event(log, "zvt.sim.auto_reversal", trace=charge.trace)
        elif reply[0] == 0x80 or reply[1] == 0x00:
            self.journal.set_status(charge, "booked")
            self.display = "approved"
            log_event(log, "zvt.sim.booked", trace=charge.trace, amount=charge.amount_minor)
            self._send(completion_apdu([(0x27, 0x00), (0x29, self.settings.terminal_id)]))
            self._wait_reply()
        else:
            self.journal.set_status(charge, "reversed_by_ecr")
            self.display = "reversed"
            log_event(log, "zvt.sim.reversed_on_request", trace=charge.trace, code=reply[1])
            self._send(abort_notice_apdu(reply[1]))
            self._wait_reply()

    # --------------------------------------------------------------- primitives
    @property
    def link(self) -> Link:
        assert self._link is not None
        return self._link

    def _send(self, apdu: bytes) -> None:
        self.link.send(apdu)

    def _status(self, code: int, text: str) -> None:
        """04 FF: show ``text``; the ECR answers it with 80 00 00 like every terminal message."""
        self.display = text
        self._send(intermediate_apdu(code))
        self._wait_reply()

    def _poll(self, wait: float = 0.0) -> Apdu | None:
        raw = self.link.poll(wait)
        if raw is None:
            return None
        try:
            return decode_apdu(raw)
        except ApduError:
            self._send(negative_apdu(0x9A))
            return None

    def _wait_frame(self, seconds: float) -> Apdu | None:
        """Next frame within ``seconds`` of clock time, bounded by the same seconds of real time."""
        deadline = self.clock.monotonic() + seconds
        real_end = time.monotonic() + seconds
        while self.clock.monotonic() < deadline and time.monotonic() < real_end:
            got = self._poll(0.01)
            if got is not None:
                return got
        return None

    def _wait_reply(self, seconds: float | None = None) -> bytes | None:
        """The ECR's 80 00 / 84 xx answer to our last message, or None (timeout)."""
        apdu = self._wait_frame(seconds if seconds is not None else self.settings.reply_timeout_s)
        while apdu is not None and parse_command_ack(apdu) is None:
            if apdu.command == (0x06, 0xB0):
                self._abort_stash = True  # the ECR's Abort crossed our message; answered by _watch_abort
            elif self.settings.stray_results and self._pending is not None:
                raise _EcrMovedOn(apdu.encode())
            else:
                log_event(log, "zvt.sim.unexpected_while_waiting_reply", apdu=apdu.label)
            apdu = self._wait_frame(self.settings.reply_timeout_s)
        return apdu.encode() if apdu is not None else None

    def _jump(self, seconds: float) -> None:
        """Let ``seconds`` of clock time pass (the peer first drains what we sent)."""
        time.sleep(REAL_SETTLE if hasattr(self.clock, "advance") else 0.0)
        self.clock.sleep(seconds)
        time.sleep(REAL_SETTLE if hasattr(self.clock, "advance") else 0.0)

    def _watch_abort(self, accept: bool) -> None:
        """Answer an 06 B0 that arrived: accepted (raise _Aborted) or refused with 84 83 00."""
        if self._abort_stash:
            self._abort_stash = False
            apdu: Apdu | None = Apdu(0x06, 0xB0)
        else:
            apdu = self._poll()
        if apdu is None:
            return
        if apdu.command == (0x06, 0xB0):
            if accept:
                self._send(ACK_APDU)
                raise _Aborted
            log_event(log, "zvt.sim.abort_refused")
            self._send(negative_apdu(0x83))

    # ---------------------------------------------------------------- dispatch
    def _handle(self, raw: bytes) -> None:
        try:
            apdu = decode_apdu(raw)
        except ApduError:
            self._send(negative_apdu(0x9A))
            return
        name = {
            (0x06, 0x00): "registration",
            (0x05, 0x01): "status_enquiry",
            (0x06, 0xC0): "read_card",
            (0x06, 0x01): "authorisation",
            (0x06, 0x30): "reversal",
            (0x06, 0x20): "repeat_receipt",
            (0x06, 0x50): "end_of_day",
            (0x06, 0xB0): "abort",
            (0x06, 0x02): "log_off",
        }.get(apdu.command)
        if parse_command_ack(apdu) is not None:
            return  # a late answer nobody waits for
        self.commands_seen.append(name or apdu.label)
        log_event(log, "zvt.sim.command", command=name or apdu.label)
        handler = getattr(self, f"_on_{name}", None) if name else None
        if handler is None:
            self._send(negative_apdu(0x83))
            return
        handler(apdu)

    def _busy(self) -> bool:
        if self.settings.scenario is Scenario.BUSY:
            self._send(negative_apdu(0x9C))
            return True
        return False

    # ---------------------------------------------------------------- commands
    def _on_registration(self, apdu: Apdu) -> None:
        data = apdu.data
        cc = int(bcd_decode(data[4:6])) if len(data) >= 6 else None
        if cc is not None and (
            cc not in self.settings.currencies or self.settings.scenario is Scenario.WRONG_CURRENCY
        ):
            self._send(Apdu(0x84, 0x1E, bytes((0x6F,)) + data[4:6]).encode())
            return
        self._send(ACK_APDU)
        fields: list[tuple[int, Any]] = [(0x19, 0x00), (0x29, self.settings.terminal_id)]
        if cc is not None:
            fields.append((0x49, cc))
        self._send(completion_apdu(fields))
        self._wait_reply()

    def _on_status_enquiry(self, apdu: Apdu) -> None:
        self._send(ACK_APDU)
        status = 0x9C if self.settings.scenario is Scenario.BUSY else 0x00
        self._send(status_completion_apdu(self.settings.sw_version, status))
        self._wait_reply()

    def _on_abort(self, apdu: Apdu) -> None:
        self.last_card = None
        self._send(ACK_APDU)

    def _on_log_off(self, apdu: Apdu) -> None:
        self._send(ACK_APDU)

    def _await_card(self, timeout_s: float) -> CardProfile | None:
        """The card the customer presents, or None on timeout / walk-away; an ECR abort raises _Aborted."""
        s = self.settings
        if s.scenario is Scenario.NO_CARD:
            self._jump(timeout_s or 60.0)
            return None
        if s.auto_present:
            return card(s.card)
        deadline = self.clock.monotonic() + (timeout_s or 1e9)
        while self.clock.monotonic() < deadline and not self.stop_event.is_set():
            self._watch_abort(accept=True)
            try:
                kind, value = self._controls.get(timeout=0.02)
            except queue.Empty:
                continue
            if kind == "card":
                return card(value)
            if kind == "walk_away":
                return None
        return None

    def _card_status_fields(self, c: CardProfile) -> list[tuple[int, Any]]:
        fields: list[tuple[int, Any]] = [(0x27, 0x00)]
        t1 = c.track1()
        if t1 is not None:
            fields.append((0x2D, t1))
        fields += [
            (0x22, c.masked_pan),
            (0x0E, c.expiry),
            (0x8A, c.card_type),
            (0x8B, c.product_name),
            (0x06, (Tlv(0x1F14, c.card_hash),)),
        ]
        return fields

    def _on_read_card(self, apdu: Apdu) -> None:
        if self._busy():
            return
        timeout_s = apdu.data[0] if apdu.data else 0
        self._send(ACK_APDU)
        self._status(0x0A, "insert card")
        try:
            c = self._await_card(float(timeout_s))
        except _Aborted:
            self._send(abort_notice_apdu(0x6C))
            self._wait_reply()
            return
        rc = self._card_problem(c)
        if rc is not None or c is None:
            self._send(abort_notice_apdu(rc if rc is not None else 0x6C))
            self._wait_reply()
            return
        self.last_card = c
        self._send(status_information_apdu(self._card_status_fields(c)))
        self._wait_reply()
        self.display = "card read"

    def _card_problem(self, c: CardProfile | None) -> int | None:
        s = self.settings.scenario
        if c is None:
            return 0x6C
        if s is Scenario.UNREADABLE:
            self._status(0x0C, "card not readable")
            return 0x64
        if s is Scenario.EXPIRED or c.key == "expired":
            return 0x78
        return None

    def _await_pin(self, c: CardProfile) -> bool:
        s = self.settings
        self._status(0x01, "enter PIN")
        if s.scenario is Scenario.PIN_TRIES_EXCEEDED:
            self._status(0x15, "incorrect PIN")
            self._status(0x01, "enter PIN")
            self._status(0x15, "incorrect PIN")
            self._status(0x18, "PIN try limit exceeded")
            return False
        if s.scenario is Scenario.WRONG_PIN_THEN_RIGHT:
            self._status(0x15, "incorrect PIN")
            self._status(0x01, "enter PIN")
        if s.auto_pin:
            return True
        tries = 0
        while not self.stop_event.is_set():
            self._watch_abort(accept=True)
            try:
                kind, value = self._controls.get(timeout=0.02)
            except queue.Empty:
                continue
            if kind == "walk_away":
                raise _WalkedAway
            if kind == "pin":
                if value == c.pin:
                    return True
                tries += 1
                if tries >= 3:
                    self._status(0x18, "PIN try limit exceeded")
                    return False
                self._status(0x15, "incorrect PIN")
                self._status(0x01, "enter PIN")
        return False

    def _trace(self) -> int:
        t = self._next_trace
        self._next_trace += 1
        return t

    def _on_authorisation(self, apdu: Apdu) -> None:
        s = self.settings
        if self._busy():
            return
        try:
            fields = decode_bmps(apdu.data)
        except ApduError:
            self._send(negative_apdu(0x9A))
            return
        amount = fields.get("amount")
        cc = fields.get("currency") or 978
        pay_type = fields.get("pay_type") or 0
        self._send(ACK_APDU)
        if cc not in s.currencies or s.scenario is Scenario.WRONG_CURRENCY:
            self._send(abort_notice_apdu(0x6F, cc))
            self._wait_reply()
            return
        if not amount:
            self._send(abort_notice_apdu(0x83))
            self._wait_reply()
            return
        c = self.last_card if pay_type & 0x02 else None
        try:
            if c is None:
                self._status(0x0A, "insert card")
                c = self._await_card(60.0)
                rc = self._card_problem(c)
                if rc is not None or c is None:
                    self._send(abort_notice_apdu(rc if rc is not None else 0x6C))
                    self._wait_reply()
                    return
            if c.needs_pin and not self._await_pin(c):
                self._decline(amount, cc, c, s.pin_fail_code, with_status=True)
                return
            self._status(0x04, "waiting for host")
            if s.scenario is Scenario.SILENT:
                self._jump(T4 + 20.0)
                return
            if s.scenario is Scenario.LONG_HOST_WAIT:
                waited = 0.0
                while waited < s.host_wait_s:
                    self._jump(s.status_every_s)
                    waited += s.status_every_s
                    self._status(0x04, "waiting for host")
            if s.scenario is Scenario.ABORT_REFUSED:
                for _ in range(20):
                    self._watch_abort(accept=False)
                    time.sleep(0.05)
            else:
                self._watch_abort(accept=False)
        except _Aborted:
            self._send(abort_notice_apdu(0x6C))
            self._wait_reply()
            return
        except _WalkedAway:
            self._send(abort_notice_apdu(0x6C))
            self._wait_reply()
            return
        if s.scenario is Scenario.DECLINED:
            self._decline(amount, cc, c, s.decline_code, with_status=True)
        elif s.scenario is Scenario.DECLINED_NO_STATUS:
            self._decline(amount, cc, c, s.decline_code, with_status=False)
        else:
            self._approve(amount, cc, c)

    def _decline(self, amount: int, cc: int, c: CardProfile, rc: int, with_status: bool) -> None:
        self.display = "declined"
        if with_status:
            self._send(
                status_information_apdu([(0x27, rc), (0x04, amount), (0x49, cc), (0x22, c.masked_pan)])
            )
            self._wait_reply()
        self._send(abort_notice_apdu(rc))
        self._wait_reply()
        self.journal.add(Charge(0, 0, amount, cc, c.card_hash.hex(), "declined", ""))

    def _local_now(self) -> Any:
        return self.clock.now().astimezone(ZoneInfo(self.settings.timezone))

    def _approve(self, amount: int, cc: int, c: CardProfile) -> None:
        now = self._local_now()
        trace = self._trace()
        receipt = trace
        fields: list[tuple[int, Any]] = [
            (0x27, 0x00),
            (0x04, amount),
            (0x49, cc),
            (0x0B, trace),
            (0x0C, now.strftime("%H%M%S")),
            (0x0D, now.strftime("%m%d")),
            (0x0E, c.expiry),
            (0x17, 1),
            (0x19, 0x70),
            (0x22, c.masked_pan),
            (0x29, self.settings.terminal_id),
            (0x3B, f"{trace:06d}".encode().ljust(8, b" ")),
            (0x87, receipt),
            (0x88, trace),
            (0x8A, c.card_type),
            (0x8B, c.product_name),
            (0x06, (Tlv(0x1F14, c.card_hash),)),
        ]
        info = status_information_apdu(fields)
        charge = Charge(
            trace, receipt, amount, cc, c.card_hash.hex(), "pending", info.hex(), card_type=c.card_type
        )
        self.journal.add(charge)
        self._pending = charge
        reply: bytes | None = None
        try:
            for _ in range(3):
                self._send(info)
                replies = 2 if self.faults.duplicated_last else 1
                for _ in range(replies):
                    reply = self._wait_reply()
                    if reply is None:
                        break
                if reply is None:
                    self._abandon()
                    return
                if reply[:2] == b"\x84\x9c":
                    reply = None
                    self._jump(2.0)
                    continue
                break
            else:
                self._abandon()
                return
        except _EcrMovedOn as moved:
            # the ECR sent its next command instead of answering: our result goes to it unsolicited first
            self._deferred.append(moved.raw)
            self._abandon()
            self._offer_held()
            return
        self._pending = None
        self._settle(charge, reply)

    def _on_reversal(self, apdu: Apdu) -> None:
        try:
            fields = decode_bmps(apdu.data[3:])
        except ApduError:
            self._send(negative_apdu(0x9A))
            return
        receipt = fields.get("receipt_no")
        self._send(ACK_APDU)
        charge = self.journal.by_receipt(receipt) if receipt is not None else None
        if charge is None or charge.status in ("auto_reversed", "reversed_by_ecr", "declined"):
            self._send(abort_notice_apdu(0xB5))
            self._wait_reply()
            return
        if charge.status == "reversed":
            self._send(abort_notice_apdu(0xB4))
            self._wait_reply()
            return
        trace = self._trace()
        info = status_information_apdu(
            [
                (0x27, 0x00),
                (0x04, charge.amount_minor),
                (0x49, charge.currency),
                (0x0B, trace),
                (0x37, charge.trace),
                (0x87, charge.receipt_no),
            ]
        )
        self._send(info)
        reply = self._wait_reply()
        if reply is not None and (reply[0] == 0x80 or reply[1] == 0x00):
            self.journal.set_status(charge, "reversed", info.hex())
        self._send(completion_apdu([(0x27, 0x00)]))
        self._wait_reply()

    def _on_repeat_receipt(self, apdu: Apdu) -> None:
        if not self.settings.repeat_receipt:
            self._send(negative_apdu(0x83))  # this terminal has no Repeat Receipt
            return
        self._send(ACK_APDU)
        last = self.journal.last()
        if last is None:
            self._send(abort_notice_apdu(0x83))
            self._wait_reply()
            return
        if last.status in ("auto_reversed", "reversed_by_ecr"):
            info = status_information_apdu(
                [
                    (0x27, 0x00),
                    (0x04, last.amount_minor),
                    (0x49, last.currency),
                    (0x37, last.trace),
                    (0x87, last.receipt_no),
                ]
            ).hex()
        else:
            info = last.reversal_info or last.status_info
        self._send(bytes.fromhex(info))
        self._wait_reply()
        self._send(completion_apdu([(0x27, 0x00)]))
        self._wait_reply()

    def _on_end_of_day(self, apdu: Apdu) -> None:
        """Close the batch: its total, receipt range and per-group counts in the 04 0F (BMP 04, 60)."""
        self._send(ACK_APDU)
        self._expire_held()
        batch = self.journal.close_batch()
        booked = [c for c in batch if c.status == "booked"]
        receipts = [c.receipt_no for c in batch if c.receipt_no]
        groups: dict[str, tuple[int, int]] = {}
        for c in booked:
            name = _CARD_GROUP.get(c.card_type, TOTALS_GROUPS[-1])
            count, total = groups.get(name, (0, 0))
            groups[name] = (count + 1, total + c.amount_minor)
        now = self._local_now()
        self._send(
            status_information_apdu(
                [
                    (0x27, 0x00),
                    (0x04, sum(c.amount_minor for c in booked)),
                    (0x0B, self._trace()),
                    (0x0C, now.strftime("%H%M%S")),
                    (0x0D, now.strftime("%m%d")),
                    (0x60, individual_totals(min(receipts, default=0), max(receipts, default=0), groups)),
                ]
            )
        )
        self._wait_reply()
        self._send(completion_apdu([(0x27, 0x00)]))
        self._wait_reply()
