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
    from edge.payment.printer_readiness import EscPosTcpReadiness
    from edge.payment.workflow import PaymentError, PaymentWorkflow
    from edge.payment.zvt_terminal import ZvtPaymentTerminal
    from hardware.zvt.errors import ChannelError
    from hardware.zvt.transport import LineSettings, SerialChannel

    config = load_edge_config(args.config)
    url = args.terminal or config.terminal.url
    upgrade(config.database_url)
    sessions = make_sessionmaker(make_engine(config.database_url))

    def show(text: str) -> None:
        print(f"terminal: {text}", flush=True)

    try:
        channel = SerialChannel(url, LineSettings(baudrate=config.terminal.baudrate))
    except ChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    terminal = ZvtPaymentTerminal(
        channel, SystemClock(), config.terminal.password, config.terminal.currency, on_display=show
    )
    printer = EscPosTcpReadiness(args.printer or config.printer.url)
    flow = PaymentWorkflow(
        sessions, terminal, printer, PromptDesk(args.yes), SystemClock(), args.officer, on_progress=show
    )
    try:
        paid = flow.pay(args.protocol)
    except PaymentError as exc:
        print(f"not paid: {exc}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    print(
        f"paid: protocol {paid.protocol_number} {paid.amount.minor / 100:.2f} {paid.amount.currency.code} "
        f"card {paid.masked_pan} receipt {paid.receipt_no} auth {paid.auth_code} payment {paid.payment_id}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pay", help="take the card payment of a protocol's reduced fine (ZVT terminal)")
    p.add_argument("protocol", metavar="PROTOCOL_ID")
    p.add_argument("--officer", required=True, help="badge of the officer taking the payment")
    p.add_argument(
        "--terminal", help="terminal URL (default: [terminal] url): /dev/ttyUSB0, a pty path, socket://h:p"
    )
    p.add_argument("--printer", help="printer URL for the readiness check (default: [printer] url)")
    p.add_argument(
        "--yes", action="store_true", help="the officer confirms the own-card questions in advance"
    )
    p.set_defaults(handler=_handler)
