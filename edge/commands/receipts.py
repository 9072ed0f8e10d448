"""`patrol-edge receipt reprint|resume PROTOCOL` and `patrol-edge printer status`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.clock import SystemClock
from edge.config import load_edge_config


def register(sub: Any) -> None:
    receipt = sub.add_parser("receipt", help="print receipts of a recorded payment again")
    rsub = receipt.add_subparsers(dest="receipt_command", metavar="ACTION", required=True)
    reprint = rsub.add_parser("reprint", help="print a numbered duplicate of one copy")
    reprint.add_argument("protocol", help="protocol (ERAP) number, verbatim")
    reprint.add_argument("--copy", type=int, choices=(1, 2), required=True, help="1 = driver, 2 = protocol")
    reprint.set_defaults(handler=cmd_reprint)
    resume = rsub.add_parser("resume", help="print every copy not yet confirmed (after a paper change)")
    resume.add_argument("protocol", help="protocol (ERAP) number, verbatim")
    resume.set_defaults(handler=cmd_resume)
    printer = sub.add_parser("printer", help="the receipt printer")
    psub = printer.add_subparsers(dest="printer_command", metavar="ACTION", required=True)
    status = psub.add_parser("status", help="ask the printer for its status (DLE EOT)")
    status.set_defaults(handler=cmd_printer_status)


def _service(args: argparse.Namespace) -> Any:
    from edge.db.base import make_engine, make_sessionmaker
    from edge.identity import load_identity
    from edge.receipts.assembly import receipt_service_from_config

    cfg = load_edge_config(args.config)
    identity = load_identity(cfg.device.id, cfg.key_file)
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    return receipt_service_from_config(cfg, identity, sessions, SystemClock())


def _report(run: Any) -> int:
    out = {
        "protocol": run.protocol_number,
        "printed": [
            {"copy": r.copy_no, "duplicate_no": r.duplicate_no, "state": r.state.value, "reason": r.reason}
            for r in run.results
        ],
        "pending_copies": list(run.pending_copies),
    }
    if run.instruction is not None:
        out["instruction_ru"] = run.instruction.text_ru
        out["instruction_kz"] = run.instruction.text_kz
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0 if all(r.state.value == "CONFIRMED" for r in run.results) else 1


def cmd_reprint(args: argparse.Namespace) -> int:
    from edge.receipts.printing import ReceiptError

    service = _service(args)
    try:
        return _report(service.reprint(args.protocol, args.copy))
    except ReceiptError as exc:
        print(f"error: {exc}")
        return 2


def cmd_resume(args: argparse.Namespace) -> int:
    from edge.receipts.printing import ReceiptError

    service = _service(args)
    try:
        return _report(service.print_receipts(service.payment_for_protocol(args.protocol)))
    except ReceiptError as exc:
        print(f"error: {exc}")
        return 2


def cmd_printer_status(args: argparse.Namespace) -> int:
    from edge.receipts.assembly import printer_from_config

    cfg = load_edge_config(args.config)
    try:
        with printer_from_config(cfg, SystemClock()) as printer:
            status = printer.status()
    except ValueError as exc:  # unknown profile or a printer URL that cannot be understood
        print(f"error: {exc}")
        return 2
    blocked, warning = status.blocking_reason(), status.warning()
    verdict = "blocked" if blocked else ("warning" if warning else "ready")
    print(json.dumps({"url": cfg.printer.url, "profile": cfg.printer.profile, "verdict": verdict,
                      "reason": blocked or warning or "", **status.as_dict()}, ensure_ascii=False))  # fmt: skip
    return 0 if verdict != "blocked" else 1
