"""``patrol-sim smsc``: a small SMPP 3.4 SMS centre on loopback (delivery receipts, fault modes)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from simulators.smsc import MODES, SmsCentre


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("smsc", help="SMS centre (SMPP 3.4) for the fine notices")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--system-id", default="patrolkit")
    parser.add_argument("--password", default="secret")
    parser.add_argument(
        "--mode", choices=MODES, default="ok", help="ok, or a fault: fail, slow, twice, silent"
    )
    parser.add_argument("--delay", type=float, default=5.0, help="seconds before answering in mode 'slow'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    centre = SmsCentre(args.host, args.port, args.system_id, args.password, args.mode, args.delay).start()
    print(
        f'SMS centre on {centre.url} (mode {args.mode}); set [fines.sms] gateway = "smpp", smpp_url = {centre.url!r}'
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        centre.stop()
    return 0
