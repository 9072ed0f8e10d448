"""`patrol-sim zvt serve|control`: run the ZVT terminal simulator on a pty or TCP, and drive it over HTTP."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.request
from pathlib import Path

from core.process_stop import StopSignals
from core.structured_log import log_event

log = logging.getLogger("simulators.zvt")


def _serve(args: argparse.Namespace) -> int:
    from core.clock import SystemClock
    from simulators.zvt.control_api import serve_control
    from simulators.zvt.journal import ChargeJournal
    from simulators.zvt.lines import PacedChannel, PtyLine, TcpLine
    from simulators.zvt.scenarios import Scenario, TerminalSettings
    from simulators.zvt.terminal import SimulatedTerminal

    stop = StopSignals().install()
    line: PtyLine | TcpLine
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        line = TcpLine(host or "127.0.0.1", int(port))
    else:
        line = PtyLine(Path(args.pty))
    settings = TerminalSettings(
        scenario=Scenario(args.scenario),
        card=args.card,
        auto_present=not args.manual,
        auto_pin=not args.manual,
    )
    settings.apply_profile(args.profile)
    wrap = (lambda ch: PacedChannel(ch, args.baud)) if args.baud else None
    sim = SimulatedTerminal(
        line, SystemClock(), settings, ChargeJournal(Path(args.journal) if args.journal else None), wrap
    )
    sim.start()
    info: dict[str, object] = {"terminal": line.path}
    if args.http:
        host, _, port = args.http.rpartition(":")
        api = serve_control(sim, host or "127.0.0.1", int(port))
        info["api"] = f"http://{api.server_address[0]!s}:{api.server_address[1]!s}"
    print(json.dumps(info), flush=True)
    try:
        stop.requested.wait()
    finally:
        sim.stop()
        line.close()
        log_event(log, "zvt_sim.stopped", signal=stop.signal_name)
    return 0


def _control(args: argparse.Namespace) -> int:
    url = args.api.rstrip("/") + ("/state" if args.action == "state" else f"/{args.action}")
    body = json.loads(args.body) if args.body else {}
    data = None if args.action == "state" else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            print(resp.read().decode())
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("zvt", help="ZVT card terminal simulator")
    sub = p.add_subparsers(dest="zvt_command", metavar="ACTION", required=True)
    s = sub.add_parser("serve", help="run the terminal on a pty (default) or TCP")
    s.add_argument("--pty", default="var/zvt0", help="stable symlink to the pty the ECR opens")
    s.add_argument("--tcp", help="HOST:PORT to listen on instead of a pty (serial-over-TCP framing)")
    s.add_argument("--http", default="127.0.0.1:8021", help="HOST:PORT of the control API ('' = none)")
    s.add_argument("--scenario", default="approved")
    s.add_argument("--card", default="visa_named")
    s.add_argument(
        "--profile",
        default="full",
        choices=["full", "no_repeat_receipt", "stray_results"],
        help="full; no_repeat_receipt (06 20 answered 84 83 00); stray_results (an unanswered approval is sent "
        "again, unsolicited, when the ECR next speaks)",
    )
    s.add_argument("--manual", action="store_true", help="wait for card and PIN from the control API")
    s.add_argument("--baud", type=int, default=0, help="pace the line like a real cable at this baud rate")
    s.add_argument("--journal", help="JSON file mirroring the terminal's journal of charges")
    s.set_defaults(handler=_serve)
    c = sub.add_parser(
        "control",
        help="drive a running simulator: card, pin, walk-away, scenario, profile, fault, unplug, replug, state",
    )
    c.add_argument("action")
    c.add_argument("body", nargs="?", help='JSON body, e.g. \'{"card": "mc_chip"}\'')
    c.add_argument("--api", default="http://127.0.0.1:8021")
    c.set_defaults(handler=_control)
