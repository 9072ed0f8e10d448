"""`patrol-sim printer`: a virtual ESC/POS printer on TCP (9100) and optionally a pty, saving receipts as txt/png."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.process_stop import StopSignals
from core.structured_log import log_event


def register(sub: Any) -> None:
    p = sub.add_parser("printer", help="virtual ESC/POS printer (TCP 9100 and/or a pty)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100, help="TCP port; 0 = pick one, -1 = no TCP")
    p.add_argument("--pty", action="store_true", help="also serve on a pseudo-terminal (its path is logged)")
    p.add_argument("--profile", default="kz1048-80mm", help="printer profile (see hardware.printer.profiles)")
    p.add_argument("--out", default="var/printer", help="folder for receipt-NNNN.txt/.png/.bin")
    p.add_argument(
        "--roll-rows", type=int, default=None, help="paper roll length in dot rows (default endless)"
    )
    p.add_argument("--near-end-rows", type=int, default=2000)
    p.add_argument("--paper-out-after-cuts", type=int, default=None, help="the roll ends after N receipts")
    p.add_argument("--no-confirmation", action="store_true", help="never answer GS ( H")
    p.add_argument("--no-status-reply", action="store_true", help="never answer DLE EOT")
    p.add_argument("--strict", action="store_true", help="stop parsing at an unknown command")
    p.set_defaults(handler=cmd_printer)


def cmd_printer(args: argparse.Namespace) -> int:
    import logging

    from hardware.printer.profiles import profile_by_name
    from simulators.printer.server import PtyPrinterServer, TcpPrinterServer
    from simulators.printer.store import ReceiptStore
    from simulators.printer.virtual_printer import PrinterScript, VirtualPrinter

    log = logging.getLogger("simulators.printer")
    stop = StopSignals().install()
    profile = profile_by_name(args.profile)
    store = ReceiptStore(profile, Path(args.out))
    script = PrinterScript(
        roll_rows=args.roll_rows,
        near_end_rows=args.near_end_rows,
        paper_out_after_cuts=args.paper_out_after_cuts,
        no_confirmation=args.no_confirmation,
        no_status_reply=args.no_status_reply,
    )
    printer = VirtualPrinter(profile, on_receipt=store.add, strict=args.strict, script=script)
    servers: list[TcpPrinterServer | PtyPrinterServer] = []
    if args.port >= 0:
        servers.append(TcpPrinterServer(printer, args.host, args.port).start())
    if args.pty:
        servers.append(PtyPrinterServer(printer).start())
    if not servers:
        print("nothing to serve: give --port >= 0 or --pty")
        return 2
    for server in servers:
        print(
            f"printer simulator ({profile.name}) at {server.url}; receipts in {store.directory}", flush=True
        )
    try:
        stop.requested.wait()
    finally:
        for server in reversed(servers):
            server.stop()
        log_event(log, "printer_sim.stopped", receipts=len(store.receipts), signal=stop.signal_name)
    return 0
