"""`patrol-edge payment status|reconcile|end-of-day|settle`: attempts whose result is unknown ("in doubt"),
and settling them by evidence, in this order: the terminal's last receipt (`reconcile`), its end-of-day
totals (`end-of-day`), last an officer's or supervisor's decision with a reason (`settle`)."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Any

from core.clock import SystemClock
from edge.commands.pay import OfficerConsole, console_terminal


def _context(args: argparse.Namespace) -> tuple[Any, Any]:
    from edge.config import load_edge_config
    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade

    config = load_edge_config(args.config)
    upgrade(config.database_url)
    return config, make_sessionmaker(make_engine(config.database_url))


def _print_doubt(journal: Any) -> int:
    from edge.payment.workflow import in_doubt_text

    doubt = journal.result_unknown()
    if not doubt:
        print("no payment attempt is in doubt")
        return 0
    by_protocol: dict[str, list[Any]] = defaultdict(list)
    for a in doubt:
        by_protocol[a.protocol_number].append(a)
    for number, attempts in by_protocol.items():
        print(in_doubt_text(number, attempts))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from edge.payment.attempts import AttemptJournal

    _config, sessions = _context(args)
    return _print_doubt(AttemptJournal(sessions, SystemClock()))


def _with_terminal(args: argparse.Namespace, action: str) -> int:
    from edge.payment.attempts import AttemptJournal
    from edge.payment.ports import TerminalRefused, TerminalUnreachable
    from edge.payment.recovery import Recovery
    from hardware.zvt.errors import ApduError, ChannelError

    config, sessions = _context(args)
    clock = SystemClock()
    try:
        events, channel, terminal = console_terminal(config, args.terminal or config.terminal.url, clock)
    except ChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    journal = AttemptJournal(sessions, clock, events)
    recovery = Recovery(sessions, terminal, clock, journal, config.device.timezone)
    terminal.on_stray_result = recovery.take_stray
    try:
        found = recovery.end_of_day() if action == "end_of_day" else recovery.reconcile()
    except (TerminalRefused, TerminalUnreachable, ApduError) as exc:
        print(f"error: the terminal could not give its {action.replace('_', '-')}: {exc}", file=sys.stderr)
        return 2
    finally:
        channel.close()
    if found.evidence:
        print(f"terminal: {found.evidence}")
    for s in found.settled:
        print(
            f"settled attempt {s.attempt_id}: {'charged' if s.charged else 'not charged'} (protocol {s.protocol_number})"
        )
        if s.charged:
            print(f"  print its receipts: patrol-edge receipt resume {s.protocol_number}")
    _print_doubt(journal)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    return _with_terminal(args, "reconcile")


def cmd_end_of_day(args: argparse.Namespace) -> int:
    return _with_terminal(args, "end_of_day")


def cmd_settle(args: argparse.Namespace) -> int:
    from edge.payment.attempts import AttemptJournal
    from edge.payment.events import PaymentEvents
    from edge.payment.settlement import SettlementRefused, decide

    _config, sessions = _context(args)
    clock = SystemClock()
    events = PaymentEvents(clock)
    events.subscribe(OfficerConsole())
    try:
        settled = decide(
            sessions,
            AttemptJournal(sessions, clock, events),
            clock,
            args.attempt,
            charged=args.charged,
            reason=args.reason,
            decided_by=args.by,
        )
    except SettlementRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(
        f"settled attempt {settled.attempt_id} of protocol {settled.protocol_number}: "
        f"{'charged, payment ' + str(settled.payment_id) if settled.charged else 'not charged'} "
        f"(decision by {args.by}, synced with its reason and evidence)"
    )
    if settled.charged:
        print(f"print its receipts: patrol-edge receipt resume {settled.protocol_number}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("payment", help="payment attempts in doubt: status, reconcile, end-of-day, settle")
    psub = p.add_subparsers(dest="payment_command", metavar="ACTION", required=True)
    status = psub.add_parser(
        "status", help="attempts in doubt and what to do next (does not use the terminal)"
    )
    status.set_defaults(handler=cmd_status, log_level_default="WARNING")
    for name, handler, text in (
        (
            "reconcile",
            cmd_reconcile,
            "ask the terminal's last receipt (Repeat Receipt) about attempts in doubt",
        ),
        (
            "end-of-day",
            cmd_end_of_day,
            "close the terminal's batch (End-of-Day) and settle what its totals prove",
        ),
    ):
        c = psub.add_parser(name, help=text)
        c.add_argument("--terminal", help="terminal URL (default: [terminal] url)")
        c.set_defaults(handler=handler, log_level_default="WARNING")
    settle = psub.add_parser(
        "settle",
        help="last resort: settle an attempt in doubt by a decision, with a reason (synced, audited)",
    )
    settle.add_argument("attempt", metavar="ATTEMPT", help="attempt id, or at least its first 8 characters")
    outcome = settle.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--charged", dest="charged", action="store_true", help="the card was charged")
    outcome.add_argument(
        "--not-charged", dest="charged", action="store_false", help="the card was not charged"
    )
    settle.add_argument("--reason", required=True, help="what shows it (bank statement, terminal journal …)")
    settle.add_argument(
        "--by", required=True, help="badge of the officer or login of the supervisor deciding"
    )
    settle.set_defaults(handler=cmd_settle, log_level_default="WARNING")
