"""``patrol-server supervisor add|disable|password|list``: accounts of the supervisor workspace, each with a
role (``--role``: supervisor, auditor or admin; ``server.review.roles``).

The password is read from a prompt (asked twice, not echoed) or from the first line of ``--password-file``;
it is hashed with argon2id and a random salt and never printed, logged or stored in clear.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.structured_log import log_event

log = logging.getLogger("server")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"password file {args.password_file}: {exc}") from None
        if not lines:
            raise ValueError(f"password file {args.password_file} is empty")
        return lines[0]
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask the password on: use --password-file")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _run(args: argparse.Namespace) -> int:
    from server.config import load_server_config
    from server.db.base import make_engine, make_sessionmaker
    from server.review.accounts import (
        AccountError,
        add_supervisor,
        check_password,
        disable_supervisor,
        set_password,
    )

    now = datetime.now(UTC)
    try:
        password = (
            check_password(_read_password(args)) if args.supervisor_command in ("add", "password") else ""
        )
    except (ValueError, AccountError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = load_server_config(args.config)
    engine = make_engine(config.database.url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            if args.supervisor_command == "add":
                add_supervisor(session, args.login, args.name, password, now, args.role)
                message = f"{args.role} {args.login} added"
            elif args.supervisor_command == "password":
                set_password(session, args.login, password, now)
                message = f"password of {args.login} changed; its sessions ended"
            elif args.supervisor_command == "disable":
                ended = disable_supervisor(session, args.login, now)
                message = f"supervisor {args.login} disabled; {ended} session(s) ended"
            else:
                from server.db.supervisors import Supervisor

                for s in session.scalars(select(Supervisor).order_by(Supervisor.login)):
                    print(f"{s.login}\t{s.role}\t{'active' if s.active else 'disabled'}\t{s.full_name}")
                return 0
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    log_event(log, f"supervisor.{args.supervisor_command}", login=args.login)
    print(message)
    if args.supervisor_command == "add":
        print(f"review interface: {config.http.public_url.rstrip('/')}/review")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("supervisor", help="accounts of the supervisor review interface")
    sub = parser.add_subparsers(dest="supervisor_command", required=True)
    add = sub.add_parser("add", help="add a supervisor (password from a prompt or --password-file)")
    add.add_argument("login", help="2-64 lower-case letters, digits, '.', '_' or '-'")
    add.add_argument("--name", required=True, help="the supervisor's full name")
    add.add_argument("--password-file", default=None, help="read the password from the file's first line")
    add.add_argument(
        "--role",
        default="supervisor",
        choices=["supervisor", "auditor", "admin"],
        help="supervisor: review and cases; auditor: read-only plus the audit; admin: accounts and devices",
    )
    add.set_defaults(handler=_run)
    password = sub.add_parser("password", help="set a new password (ends the account's sessions)")
    password.add_argument("login")
    password.add_argument(
        "--password-file", default=None, help="read the password from the file's first line"
    )
    password.set_defaults(handler=_run)
    disable = sub.add_parser("disable", help="disable an account and end its sessions at once")
    disable.add_argument("login")
    disable.set_defaults(handler=_run)
    listing = sub.add_parser("list", help="list supervisors")
    listing.set_defaults(handler=_run, login="")
