"""`patrol-edge pay PROTOCOL_ID`: take the card payment of a protocol's reduced fine.

The officer sees each state of the attempt once, in words, and what the terminal displays; no log lines
are mixed in at the default log level (WARNING for this command). Exit codes: 0 paid and both receipts
printed, 1 not paid, 3 no terminal line, 4 paid but receipts pending (`receipt resume`), 5 in doubt.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.clock import Clock, SystemClock
from edge.payment.events import PaymentEvent, PaymentFinished, StepStarted, TerminalShows
from edge.payment.ports import CardRead, PromptUnanswered

EXIT_NOT_PAID = 1
EXIT_NO_LINE = 3
EXIT_RECEIPTS_PENDING = 4
EXIT_IN_DOUBT = 5


class PromptDesk:
    """The officer answers the own-card questions on the terminal (or ``--yes`` answers them in advance)."""

    def __init__(self, assume_yes: bool) -> None:
        self.assume_yes = assume_yes

    def _ask(self, question: str) -> bool:
        if self.assume_yes:
            print(f"{question} yes (--yes)", flush=True)
            return True
        try:
            answer = input(f"{question} [y/N] ")
        except EOFError as exc:
            print(flush=True)
            raise PromptUnanswered("end of input, no answer") from exc
        except KeyboardInterrupt as exc:
            print(flush=True)
            raise PromptUnanswered("interrupted") from exc
        return answer.strip().lower() in ("y", "yes")

    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        return self._ask(
            f"Name on card ****{card.last4} is close to {driver_name!r} ({reason}). Same person?"
        )

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        return self._ask(
            f"Card ****{card.last4} gives no name. Embossed name compared with the ID of {driver_name!r}?"
        )


class OfficerConsole:
    """Prints the payment's events for the officer: each state once, what the terminal shows (a text
    repeated by the terminal is printed once), notices. Steps and the final summary are left to the caller."""

    def __init__(self) -> None:
        self._last_shown: str | None = None

    def __call__(self, event: PaymentEvent) -> None:
        if isinstance(event, StepStarted | PaymentFinished):
            return
        if isinstance(event, TerminalShows):
            if event.text == self._last_shown:
                return
            self._last_shown = event.text
        print(event.words(), flush=True)


def console_terminal(config: Any, url: str, clock: Clock) -> tuple[Any, Any, Any]:
    """Events printed for the officer, and the configured ZVT terminal whose texts go to them: (events, its
    line, its adapter); ``ChannelError`` when the line cannot be opened."""
    from edge.payment.events import PaymentEvents
    from edge.payment.zvt_terminal import ZvtPaymentTerminal
    from hardware.zvt.transport import LineSettings, SerialChannel

    events = PaymentEvents(clock)
    events.subscribe(OfficerConsole())
    channel = SerialChannel(url, LineSettings(baudrate=config.terminal.baudrate))
    terminal = ZvtPaymentTerminal(
        channel, clock, config.terminal.password, config.terminal.currency, on_display=events.terminal_shows
    )
    return events, channel, terminal


def _handler(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade
    from edge.identity import load_identity
    from edge.payment.settlement import METHOD_WORDS
    from edge.payment.workflow import PaymentError, PaymentInDoubt, PaymentWorkflow
    from edge.receipts.assembly import (
        printer_check_from_config,
        printer_from_config,
        receipt_service_from_config,
    )
    from hardware.zvt.errors import ChannelError

    config = load_edge_config(args.config)
    if args.printer:
        config.printer.url = args.printer
    upgrade(config.database_url)
    sessions = make_sessionmaker(make_engine(config.database_url))
    identity = load_identity(config.device.id, config.key_file, create=True)
    clock = SystemClock()
    try:
        events, channel, terminal = console_terminal(config, args.terminal or config.terminal.url, clock)
    except ChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_LINE
    printer = printer_from_config(config, clock)
    try:
        flow = PaymentWorkflow(
            sessions,
            terminal,
            printer_check_from_config(config, clock, printer),
            PromptDesk(args.yes),
            clock,
            args.officer,
            events=events,
            timezone=config.device.timezone,
        )
        paid = flow.pay(args.protocol)
    except PaymentInDoubt as exc:
        print(f"in doubt: {exc}", file=sys.stderr)
        return EXIT_IN_DOUBT
    except PaymentError as exc:
        print(f"not paid: {exc}", file=sys.stderr)
        return EXIT_NOT_PAID
    finally:
        channel.close()
    summary = (
        f"protocol {paid.protocol_number} {paid.amount.format()} card {paid.masked_pan} "
        f"receipt {paid.receipt_no or '—'} auth {paid.auth_code or '—'} payment {paid.payment_id}"
    )
    service = receipt_service_from_config(config, identity, sessions, clock, printer)
    if paid.found_by is not None:
        print(
            f"recovery found this protocol paid, settled by {METHOD_WORDS[paid.found_by]}: {summary}",
            flush=True,
        )
        pending = service.pending_copies(paid.payment_id)
        if pending:
            print(
                f"its receipts are not printed yet (copies {list(pending)}); print them now: "
                f"patrol-edge receipt resume {paid.protocol_number}",
                flush=True,
            )
            return EXIT_RECEIPTS_PENDING
        print(
            "its receipts were printed already (a numbered duplicate: patrol-edge receipt reprint)",
            flush=True,
        )
        return 0
    print(f"paid: {summary}", flush=True)
    run = service.print_receipts(paid.payment_id)
    for result in run.results:
        print(f"receipt copy {result.copy_no}: {result.state.value}")
    if run.pending_copies:
        if run.instruction is not None:
            print(run.instruction.text_ru)
            print(run.instruction.text_kz)
        print(
            f"receipts pending: copies {list(run.pending_copies)}; then run: patrol-edge receipt resume {paid.protocol_number}"
        )
        return EXIT_RECEIPTS_PENDING
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pay", help="take the card payment of a protocol's reduced fine (ZVT terminal)")
    p.add_argument("protocol", metavar="PROTOCOL_ID")
    p.add_argument("--officer", required=True, help="badge of the officer taking the payment")
    p.add_argument(
        "--terminal", help="terminal URL (default: [terminal] url): /dev/ttyUSB0, a pty path, socket://h:p"
    )
    p.add_argument("--printer", help="printer URL (default: [printer] url)")
    p.add_argument(
        "--yes", action="store_true", help="the officer confirms the own-card questions in advance"
    )
    p.set_defaults(handler=_handler, log_level_default="WARNING")
