"""``patrol-server audit verify``: walk the access audit's hash chain (``server.review.audit_chain``) and say
whether it is intact. Exit 0 intact, 1 broken (the first row that does not fit and why)."""

from __future__ import annotations

import argparse
import sys


def _verify(args: argparse.Namespace) -> int:
    from server.config import load_server_config
    from server.db.base import make_engine, make_sessionmaker
    from server.review.audit_chain import verify_chain

    config = load_server_config(args.config)
    engine = make_engine(config.database.url)
    try:
        with make_sessionmaker(engine)() as session:
            report = verify_chain(session)
    finally:
        engine.dispose()
    print(report.text(), file=sys.stdout if report.intact else sys.stderr)
    return 0 if report.intact else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="the access audit")
    sub = parser.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser("verify", help="check the audit's hash chain from its first row to its last")
    verify.set_defaults(handler=_verify)
