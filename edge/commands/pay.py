"""`patrol-edge pay PROTOCOL_ID`: take the card payment of a protocol's reduced fine, with live terminal status."""

from __future__ import annotations

import argparse
import sys

from core.clock import SystemClock
from edge.payment.ports import CardRead


class PromptDesk:
    """The officer answers the own-card questions on the terminal (or ``--yes`` answers them in advance)."""

    def __init__(self, assume_yes: bool) -> None:
        self.assume_yes = assume_yes

    def _ask(self, question: str) -> bool:
        if self.assume_yes:
            print(f"{question} yes (--yes)")
            return True
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        return self._ask(
            f"Name on card ****{card.last4} is close to {driver_name!r} ({reason}). Same person?"
        )

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        return self._ask(
            f"Card ****{card.last4} gives no name. Embossed name compared with the ID of {driver_name!r}?"
        )


def _handler(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade
    from edge.identity import load_identity
    from edge.payment.recovery import reconcile
    from edge.payment.workflow import PaymentError, PaymentWorkflow
    from edge.payment.zvt_terminal import ZvtPaymentTerminal
    from edge.receipts.assembly import (
        printer_check_from_config,
        printer_from_config,
        receipt_service_from_config,
    )
    from hardware.zvt.errors import ChannelError
    from hardware.zvt.transport import LineSettings, SerialChannel

    config = load_edge_config(args.config)
    if args.printer:
        config.printer.url = args.printer
    url = args.terminal or config.terminal.url
    upgrade(config.database_url)
    sessions = make_sessionmaker(make_engine(config.database_url))
    identity = load_identity(config.device.id, config.key_file, create=True)
    clock = SystemClock()

    def show(text: str) -> None:
        print(f"terminal: {text}", flush=True)

    try:
        channel = SerialChannel(url, LineSettings(baudrate=config.terminal.baudrate))
    except ChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    terminal = ZvtPaymentTerminal(
        channel, clock, config.terminal.password, config.terminal.currency, on_display=show
    )
    printer = printer_from_config(config, clock)
    try:
        # a payment left in flight by a crash or a pulled cable is settled before anything else happens
        unresolved = reconcile(sessions, terminal, clock)
        if unresolved:
            print(f"not paid: earlier payment attempts unresolved: {', '.join(unresolved)}", file=sys.stderr)
            return 2
        flow = PaymentWorkflow(
            sessions,
            terminal,
            printer_check_from_config(config, clock, printer),
            PromptDesk(args.yes),
            clock,
            args.officer,
            on_progress=show,
        )
        paid = flow.pay(args.protocol)
    except PaymentError as exc:
        print(f"not paid: {exc}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    print(
        f"paid: protocol {paid.protocol_number} {paid.amount.format()} "
        f"card {paid.masked_pan} receipt {paid.receipt_no} auth {paid.auth_code} payment {paid.payment_id}",
        flush=True,
    )
    run = receipt_service_from_config(config, identity, sessions, clock, printer).print_receipts(
        paid.payment_id
    )
    for result in run.results:
        print(f"receipt copy {result.copy_no}: {result.state.value}")
    if run.pending_copies:
        if run.instruction is not None:
            print(run.instruction.text_ru)
            print(run.instruction.text_kz)
        print(
            f"receipts pending: copies {list(run.pending_copies)}; then run: patrol-edge receipt resume {paid.protocol_number}"
        )
        return 4
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
    p.set_defaults(handler=_handler)
