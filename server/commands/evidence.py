"""``patrol-server evidence export``: an evidence package (``server.evidence.export``) written to a file.

    patrol-server evidence export PROTOCOL --out FILE.zip
    patrol-server evidence export --device DEV-0001 --from 2026-03-02T09:00:00+05:00 --to … --out FILE.zip

The export is written to the access audit under the operator's OS user name (``cli:<user>``). The file is
written next to its final name and renamed when complete, so a failed export leaves no partial ZIP. Exit 0
done, 1 nothing to export or a bad argument (the message says which).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.structured_log import log_event


def _time(text: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: expected an ISO 8601 time with its offset, e.g. 2026-03-02T09:00:00+05:00") from None
    if at.tzinfo is None:
        raise ValueError(f"{name}: give the offset (e.g. +05:00 or Z)")
    return at


def _export(args: argparse.Namespace) -> int:
    import logging

    from server.config import load_server_config
    from server.db.base import make_engine, make_sessionmaker, transaction
    from server.evidence.export import ExportError, plan_for_protocol, plan_for_range, stream_package
    from server.review import audit
    from server.review.audit import Operator
    from server.video.storage import open_store

    log = logging.getLogger("server")
    if bool(args.protocol) == bool(args.device):
        print("error: give a PROTOCOL, or --device with --from and --to", file=sys.stderr)
        return 1
    try:
        start = _time(args.start, "--from") if args.device else None
        end = _time(args.end, "--to") if args.device else None
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}" if isinstance(exc, ValueError) else "error: --device needs --from and --to", file=sys.stderr)
        return 1
    if args.device and (start is None or end is None):
        print("error: --device needs --from and --to", file=sys.stderr)
        return 1
    config = load_server_config(args.config)
    engine = make_engine(config.database.url)
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    operator = Operator(f"cli:{getpass.getuser()}"[:64])
    now = datetime.now(UTC)
    try:
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            if args.protocol:
                audit.record(session, operator, "evidence.export", now, protocol_number=args.protocol,
                             detail=f"evidence package to {out.name} (command line)")  # fmt: skip
                plan = plan_for_protocol(session, args.protocol, operator.login, now, config.http.public_url,
                                         config.review.timezone)  # fmt: skip
            else:
                assert start is not None and end is not None
                audit.record(session, operator, "evidence.export", now, device_id=args.device,
                             detail=f"{args.device} {start.isoformat()}..{end.isoformat()} to {out.name} (command line)")  # fmt: skip
                plan = plan_for_range(session, args.device, start, end, operator.login, now)
        store = open_store(config.storage)
        size = 0
        with partial.open("wb") as fh:
            for piece in stream_package(plan, store):
                fh.write(piece)
                size += len(piece)
            fh.flush()
            os.fsync(fh.fileno())
        partial.replace(out)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        partial.unlink(missing_ok=True)
        engine.dispose()
    log_event(log, "evidence.exported", out=str(out), segments=len(plan.segments), bytes=size)
    print(f"{out}: {len(plan.segments)} segment(s), {size} bytes; verify with the commands in VERIFY.txt")
    for note in plan.notes:
        print(f"note: {note}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("evidence", help="evidence packages of stops and footage")
    sub = parser.add_subparsers(dest="evidence_command", required=True)
    export = sub.add_parser("export", help="write an evidence package (ZIP) of a stop, or of a device's footage")
    export.add_argument("protocol", nargs="?", default="", help="the protocol number of the stop")
    export.add_argument("--device", default="", help="a device id (with --from and --to) instead of a protocol")
    export.add_argument("--from", dest="start", default=None, help="first moment, ISO 8601 with offset")
    export.add_argument("--to", dest="end", default=None, help="last moment, ISO 8601 with offset")
    export.add_argument("--out", required=True, help="the ZIP file to write")
    export.set_defaults(handler=_export)
