"""`patrol-server fines …`: the fine lifecycle by hand.

- ``run [--date D]``: the daily run for day D (default: today in ``[fines] timezone``), then the SMS it made;
  exit 75 when another run holds the lock;
- ``send``: send the SMS that are due;
- ``import FILE.json``: fines from another system (``{"fines": [...]}`` as ``POST /api/fines/import``);
- ``outcomes FILE.csv``: postal delivery outcomes (``tracking,outcome,date``);
- ``contacts FILE.csv``: phone numbers for notices (``person_id,phone``);
- ``client add NAME --scope S…``, ``provider add NAME``: API keys, shown once;
- ``appeal NUMBER open|rejected|upheld [--date D] [--ref R]``: the appealed mark;
- ``reconcile PROVIDER FILE.csv --date D``: a provider's daily statement against the recorded payments;
- ``publications [--from D] [--to D]``: the publication list as CSV on stdout;
- ``dataset``: publish the devices' unpaid-fines list now.

Every command prints one JSON object; bad input is refused with a message naming what is wrong (exit 2).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from server.config import ServerConfig, load_server_config

EX_TEMPFAIL = 75


def register(sub: Any) -> None:
    fines = sub.add_parser(
        "fines", help="the fine lifecycle: daily run, imports, keys, appeals, reconciliation"
    )
    fsub = fines.add_subparsers(dest="fines_command", metavar="ACTION", required=True)
    run = fsub.add_parser("run", help="the daily run (idempotent; one at a time), then send the SMS it made")
    run.add_argument("--date", type=date.fromisoformat, help="the day to run for (default: today, local)")
    run.add_argument("--no-send", action="store_true", help="record the SMS but leave sending to the server")
    run.set_defaults(handler=cmd_run)
    fsub.add_parser("send", help="send the SMS that are due").set_defaults(handler=cmd_send)
    imp = fsub.add_parser("import", help="fines from another system: a JSON file {'fines': [...]}")
    imp.add_argument("file", type=Path)
    imp.set_defaults(handler=cmd_import)
    outc = fsub.add_parser("outcomes", help="postal delivery outcomes: CSV tracking,outcome,date")
    outc.add_argument("file", type=Path)
    outc.set_defaults(handler=cmd_outcomes)
    cont = fsub.add_parser("contacts", help="phone numbers for notices: CSV person_id,phone")
    cont.add_argument("file", type=Path)
    cont.add_argument("--source", default="import", help="where the numbers come from (e.g. bmg)")
    cont.set_defaults(handler=cmd_contacts)
    client = fsub.add_parser("client", help="API clients (look-up, imports, post, bailiff)")
    csub = client.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    cadd = csub.add_parser("add", help="a new client and its key (shown once)")
    cadd.add_argument("name")
    cadd.add_argument(
        "--scope", action="append", required=True, choices=["lookup", "import", "post", "bailiff"]
    )
    cadd.add_argument("--per-minute", type=int, default=60)
    cadd.set_defaults(handler=cmd_client_add)
    provider = fsub.add_parser("provider", help="payment providers")
    psub = provider.add_subparsers(dest="provider_command", metavar="ACTION", required=True)
    padd = psub.add_parser("add", help="a new provider and its HMAC key (shown once)")
    padd.add_argument("name")
    padd.set_defaults(handler=cmd_provider_add)
    appeal = fsub.add_parser("appeal", help="open or decide an appeal: it pauses the fine's clocks")
    appeal.add_argument("number")
    appeal.add_argument("action", choices=["open", "rejected", "upheld"])
    appeal.add_argument("--date", type=date.fromisoformat, help="default: today, local")
    appeal.add_argument("--ref", default="", help="the case or decision reference")
    appeal.set_defaults(handler=cmd_appeal)
    rec = fsub.add_parser("reconcile", help="reconcile a provider's daily statement (CSV)")
    rec.add_argument("provider")
    rec.add_argument("file", type=Path)
    rec.add_argument("--date", type=date.fromisoformat, required=True, help="the statement's value date")
    rec.set_defaults(handler=cmd_reconcile)
    pub = fsub.add_parser("publications", help="the publication list as CSV on stdout")
    pub.add_argument("--from", dest="since", type=date.fromisoformat)
    pub.add_argument("--to", dest="until", type=date.fromisoformat)
    pub.set_defaults(handler=cmd_publications)
    fsub.add_parser("dataset", help="publish the devices' unpaid-fines list now").set_defaults(
        handler=cmd_dataset
    )


@dataclass
class _Env:
    config: ServerConfig
    sessions: sessionmaker[Session]

    def today(self) -> date:
        return datetime.now(ZoneInfo(self.config.fines.timezone)).date()


def _env(args: argparse.Namespace) -> _Env:
    from server.db.base import make_engine, make_sessionmaker

    config = load_server_config(args.config)
    return _Env(config, make_sessionmaker(make_engine(config.database.url)))


def _work(env: _Env) -> Any:
    from server.fines.daily_run import FineWork
    from server.keys import load_server_signer

    return FineWork(load_server_signer(env.config.keys.signing_key_file))


def _now() -> datetime:
    return datetime.now(UTC)


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str), flush=True)


def _refuse(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _send(env: _Env) -> dict[str, int]:
    from server.fines.notifier import send_due
    from server.fines.runtime import make_gateway, notify_settings

    gateway = make_gateway(env.config)
    try:
        return asdict(send_due(env.sessions, gateway, _now, notify_settings(env.config)))
    finally:
        gateway.close()


def cmd_run(args: argparse.Namespace) -> int:
    from server.fines.daily_run import RunSettings, run_daily
    from server.fines.run_lock import RunBusy

    env = _env(args)
    day = args.date or env.today()
    f = env.config.fines
    try:
        report = run_daily(
            env.sessions,
            day,
            _work(env),
            _now,
            RunSettings(batch=f.batch, unmatched_refund_days=f.unmatched_refund_days),
        )
    except RunBusy as exc:
        print(f"fines run: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    out: dict[str, Any] = {"run": asdict(report)}
    if not args.no_send:
        out["sms"] = _send(env)
    _print(out)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    _print({"sms": _send(_env(args))})
    return 0


def _read(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit} bytes")
    return data


def cmd_import(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.db.base import transaction
    from server.fines.daily_run import import_and_start
    from server.routes.fines_api import ImportRequest

    env = _env(args)
    try:
        req = ImportRequest.model_validate_json(_read(args.file, 64 * 1024 * 1024))
    except (ValidationError, ValueError, OSError) as exc:
        return _refuse(f"fines import: {args.file}: {exc}")
    with transaction(env.sessions) as session:
        results = import_and_start(session, req.fines, _work(env), _now())
    _print({"results": [r.model_dump() for r in results]})
    return 0


def cmd_outcomes(args: argparse.Namespace) -> int:
    from server.db.base import transaction
    from server.fines.postal import OutcomeFileError, apply_outcome, parse_outcome_file

    env = _env(args)
    try:
        outcomes = parse_outcome_file(_read(args.file, 64 * 1024 * 1024))
    except (OutcomeFileError, ValueError, OSError) as exc:
        return _refuse(f"fines outcomes: {args.file}: {exc}")
    results = []
    for o in outcomes:
        with transaction(env.sessions) as session:
            results.append(apply_outcome(session, o, "file", _now()).model_dump())
    _print({"results": results})
    return 0


def cmd_contacts(args: argparse.Namespace) -> int:
    from server.db.base import transaction
    from server.fines.contacts import ContactError, parse_contacts, store_contacts

    env = _env(args)
    try:
        pairs = parse_contacts(_read(args.file, 256 * 1024 * 1024))
    except (ContactError, ValueError, OSError) as exc:
        return _refuse(f"fines contacts: {args.file}: {exc}")
    with transaction(env.sessions) as session:
        stored = store_contacts(session, pairs, args.source, _now())
    _print({"stored": stored})
    return 0


def cmd_client_add(args: argparse.Namespace) -> int:
    from server.db.base import transaction
    from server.fines.api_keys import add_client

    env = _env(args)
    try:
        with transaction(env.sessions) as session:
            key = add_client(session, args.name, set(args.scope), args.per_minute, _now())
    except ValueError as exc:
        return _refuse(f"fines client add: {exc}")
    _print({"client": args.name, "scopes": sorted(set(args.scope)), "key": key})
    return 0


def cmd_provider_add(args: argparse.Namespace) -> int:
    import re

    from server.db.base import transaction
    from server.db.fine_payments import PaymentProvider

    env = _env(args)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,31}", args.name):
        return _refuse(
            f"fines provider add: name {args.name!r}: lower-case letters, digits, '_', '.', '-' (up to 32)"
        )
    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    with transaction(env.sessions) as session:
        if session.get(PaymentProvider, args.name) is not None:
            return _refuse(f"fines provider add: provider {args.name!r} exists already")
        session.add(PaymentProvider(name=args.name, hmac_key=key, active=True, created_at=_now()))
    _print({"provider": args.name, "hmac_key_base64": key})
    return 0


def cmd_appeal(args: argparse.Namespace) -> int:
    from core.fines.fine_state import TransitionRefused
    from core.fines.lifecycle_engine import EventRefused
    from server.db.base import transaction
    from server.fines.appeals import UnknownFine, close_appeal, open_appeal

    env = _env(args)
    on = args.date or env.today()
    try:
        with transaction(env.sessions) as session:
            if args.action == "open":
                h = open_appeal(session, args.number, on, args.ref, _now())
            else:
                h = close_appeal(session, args.number, on, args.action == "upheld", args.ref, _now())
    except (UnknownFine, EventRefused, TransitionRefused) as exc:
        return _refuse(f"fines appeal: {exc}")
    _print({"fine": args.number, "happened": h.kind.value, "on": h.on.isoformat(), "state": h.to_state.value})
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from server.db.base import transaction
    from server.fines.reconciliation import StatementError, reconcile

    env = _env(args)
    try:
        data = _read(args.file, 256 * 1024 * 1024)
        with transaction(env.sessions) as session:
            report = reconcile(session, args.provider, args.date, args.file.name, data, _now())
    except (StatementError, ValueError, OSError) as exc:
        return _refuse(f"fines reconcile: {exc}")
    _print(report)
    return 0


def cmd_publications(args: argparse.Namespace) -> int:
    from server.fines.publication_list import publication_csv

    env = _env(args)
    with env.sessions() as session:
        sys.stdout.write(publication_csv(session, args.since, args.until))
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from server.db.base import transaction
    from server.fines.unpaid_dataset import publish_unpaid

    env = _env(args)
    work = _work(env)
    with transaction(env.sessions) as session:
        version = publish_unpaid(session, work.signer, env.config.fines.unpaid_dataset_jurisdiction, _now())
    _print({"dataset": "unpaid_fines", "version": version, "changed": version is not None})
    return 0
