"""`patrol-edge officer add` and `patrol-edge stop open`: register the officer and draw up a protocol.

``officer add … --pin`` sets the officer's PIN for the officer app (asked twice on the terminal, or read from
the first line of standard input when that is not a terminal); only its argon2id hash is stored.

``stop open`` takes the protocol's position from the recorder's latest GPS fix (its status file) when that fix
is at most ``[gps] stop_max_age_s`` old, unless ``--lat``/``--lon`` are given."""

from __future__ import annotations

import argparse
from typing import Any

from core.clock import SystemClock


def register(sub: Any) -> None:
    officer = sub.add_parser("officer", help="officers known to this device")
    osub = officer.add_subparsers(dest="officer_command", metavar="ACTION")
    add = osub.add_parser("add", help="register (or update) an officer")
    add.add_argument("badge")
    add.add_argument("full_name")
    add.add_argument("--unit", default="")
    add.add_argument("--pin", action="store_true", help="set the PIN for the officer app (4-8 digits, asked)")
    add.add_argument(
        "--language", choices=["kk", "ru", "en"], help="the officer app's language for this officer"
    )
    add.set_defaults(handler=cmd_officer_add)

    stop = sub.add_parser("stop", help="traffic stops")
    ssub = stop.add_subparsers(dest="stop_command", metavar="ACTION")
    op = ssub.add_parser(
        "open", help="draw up a protocol in the simplified procedure (computes the reduced fine)"
    )
    op.add_argument("number", help="protocol number issued by ERAP")
    op.add_argument("--article", required=True, help="article and part, e.g. 592.1 or 592.3-1")
    op.add_argument("--driver-name", required=True, help="full name as on the ID (Cyrillic)")
    op.add_argument("--iin", required=True, help="driver's IIN, 12 digits")
    op.add_argument("--plate", required=True, help="vehicle plate")
    op.add_argument("--officer", required=True, help="badge of the officer")
    op.add_argument("--place", default="")
    op.add_argument(
        "--lat", type=float, default=None, help="typed position (default: the recorder's GPS fix)"
    )
    op.add_argument("--lon", type=float, default=None)
    op.set_defaults(handler=cmd_stop_open)


def _sessions(args: argparse.Namespace) -> Any:
    from edge.config import load_edge_config
    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade

    cfg = load_edge_config(args.config)
    upgrade(cfg.database_url)
    return cfg, make_sessionmaker(make_engine(cfg.database_url))


def _read_pin() -> str:
    import getpass
    import sys

    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    first = getpass.getpass("PIN (4-8 digits): ")
    if getpass.getpass("PIN again: ") != first:
        raise ValueError("the two PINs differ")
    return first


def cmd_officer_add(args: argparse.Namespace) -> int:
    from edge.db.base import transaction
    from edge.officer_app.accounts import PinError, hash_pin
    from edge.stops import StopError, add_officer

    _cfg, sessions = _sessions(args)
    try:
        pin_hash = hash_pin(_read_pin()) if args.pin else None
        with transaction(sessions) as s:
            officer = add_officer(s, args.badge, args.full_name, args.unit)
            if pin_hash is not None:
                officer.pin_hash = pin_hash
                officer.pin_failures = 0
                officer.pin_locked_until = None
            if args.language:
                officer.language = args.language
    except (StopError, PinError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"officer {args.badge} registered" + (" with a PIN for the officer app" if args.pin else ""))
    return 0


def cmd_stop_open(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from core.money import Money, currency
    from edge.recorder.position import published_fix
    from edge.recorder.recorder import read_status
    from edge.stops import StopDetails, StopError, open_protocol

    cfg, sessions = _sessions(args)
    gps_fix = published_fix(read_status(cfg.recording_dir))
    details = StopDetails(
        number=args.number,
        article=args.article,
        driver_name=args.driver_name,
        driver_iin=args.iin,
        vehicle_plate=args.plate,
        officer_badge=args.officer,
        place=args.place,
        lat=args.lat,
        lon=args.lon,
    )
    try:
        p = open_protocol(
            sessions,
            details,
            device_id=cfg.device.id,
            jurisdiction=cfg.device.jurisdiction,
            timezone=cfg.device.timezone,
            holidays=list(cfg.rules.holidays),
            clock=SystemClock(),
            gps_fix=gps_fix,
            gps_max_age=timedelta(seconds=cfg.gps.stop_max_age_s),
        )
    except StopError as exc:
        print(f"error: {exc}")
        return 1
    cur = currency(p.currency)
    print(
        f"protocol {p.number}: article {p.article}, fine {Money(p.full_minor, cur).format()}, "
        f"reduced {Money(p.reduced_minor, cur).format()} if paid by {p.discount_deadline.isoformat()} "
        f"({p.legal_basis})"
    )
    if p.lat is not None and p.lon is not None:
        print(f"position: {p.lat:.5f}, {p.lon:.5f}")
    else:
        print("position: not known (no fresh GPS fix)")
    return 0
