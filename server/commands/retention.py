"""``patrol-server retention run``: the daily deletion run of footage whose retention ended
(``server.review.retention``), for a systemd timer or cron.

    patrol-server retention run [--now 2026-06-01T02:00:00+05:00] [--dry-run]

``--now`` judges as of another moment: any moment with ``--dry-run`` (what would a later run delete?), but
never later than the clock for a real run, which would delete footage before its retention ends.
``--dry-run`` says what would be deleted and changes nothing. Exit 0 done, 1 a bad argument, 2 another
retention run holds the lock, 3 the video store could not be reached (what it did not do, the next run does).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from core.structured_log import log_event


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("--now: expected an ISO 8601 time with its offset, e.g. 2026-06-01T02:00:00+05:00") from None
    if at.tzinfo is None:
        raise ValueError("--now: give the offset (e.g. +05:00 or Z)")
    return at.astimezone(UTC)


def _run(args: argparse.Namespace) -> int:
    import logging

    from server.config import load_server_config
    from server.db.base import make_engine, make_sessionmaker
    from server.fines.run_lock import RunBusy, run_lock
    from server.review.retention import run_retention
    from server.video.storage import StoreUnavailable, open_store

    log = logging.getLogger("server")
    try:
        now = _now(args.now)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.dry_run and now > datetime.now(UTC):
        print("error: --now is later than the clock: only a --dry-run may look ahead", file=sys.stderr)
        return 1
    config = load_server_config(args.config)
    engine = make_engine(config.database.url)

    def clock() -> datetime:
        return datetime.now(UTC)

    try:
        store = open_store(config.storage)
        with run_lock(engine, clock, "retention"), make_sessionmaker(engine)() as session:
            report = run_retention(session, store, config.retention, now, clock, dry_run=args.dry_run,
                                   run_by=f"cli:{getpass.getuser()}")  # fmt: skip
    except RunBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"error: the video store could not be reached, the next run does the rest: {exc}", file=sys.stderr)
        return 3
    finally:
        engine.dispose()
    log_event(log, "retention.run", dry_run=args.dry_run, deleted=len(report.deleted), bytes=report.deleted_bytes,
              held=len(report.held))  # fmt: skip
    print(report.text())
    if args.dry_run:
        for device_id, seq, size in report.deleted:
            print(f"would delete {device_id} #{seq} ({size} bytes)")
    if report.locks.pending:
        print(f"error: the video store failed while its object locks were made to follow retention; the next run "
              f"does the rest: {report.locks.pending}", file=sys.stderr)  # fmt: skip
        return 3
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("retention", help="footage retention by category")
    sub = parser.add_subparsers(dest="retention_command", required=True)
    run = sub.add_parser("run", help="delete footage whose retention ended (idempotent, audited)")
    run.add_argument("--now", default=None, help="judge as of this moment, ISO 8601 with offset (default: now)")
    run.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    run.set_defaults(handler=_run)
