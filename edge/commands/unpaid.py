"""``patrol-edge unpaid IIN``: the driver's unpaid fines from the down-synced ``unpaid_fines`` list (offline),
with the list's version and age; "no list yet" when the device has none."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from core.fines.unpaid_list import UnpaidList, UnpaidListError
from core.iin import InvalidIin, parse_iin
from core.money import Money, currency


def register(sub: Any) -> None:
    p = sub.add_parser("unpaid", help="a driver's unpaid fines from the device's unpaid-fines list (offline)")
    p.add_argument("iin", help="the driver's IIN")
    p.add_argument("--db", help="device database URL (default: from the configuration)")
    p.set_defaults(handler=cmd_unpaid)


def lookup(session: Any, iin: str, now: datetime) -> dict[str, Any]:
    """What the roadside check shows for ``iin`` (already validated)."""
    from edge.sync.datasets import DatasetVersion

    row = session.query(DatasetVersion).filter_by(dataset="unpaid_fines", active=True).first()
    if row is None:
        return {"iin": iin, "list": None, "message": "no list yet"}
    try:
        found = UnpaidList.parse(row.content)
    except UnpaidListError as exc:
        return {"iin": iin, "list": {"version": row.version}, "message": f"the list cannot be read: {exc}"}
    applied = row.applied_at if row.applied_at.tzinfo else row.applied_at.replace(tzinfo=UTC)
    about = {
        "version": row.version,
        "applied_at": applied.isoformat(),
        "age_hours": round((now - applied).total_seconds() / 3600, 1),
    }
    entry = found.lookup(iin)
    if entry is None:
        return {"iin": iin, "list": about, "count": 0, "total": None, "oldest": None}
    total = Money(entry.total_minor, currency(found.currency))
    return {"iin": iin, "list": about, "count": entry.count, "total": total.format(), "total_minor": entry.total_minor,
            "oldest": entry.oldest.isoformat()}  # fmt: skip


def cmd_unpaid(args: argparse.Namespace) -> int:
    from edge.db.base import make_engine, make_sessionmaker

    try:
        iin = parse_iin(args.iin).value
    except InvalidIin as exc:
        print(f"unpaid: {exc}")
        return 2
    if args.db:
        url = args.db
    else:
        from edge.config import load_edge_config

        url = str(load_edge_config(args.config).database_url)
    with make_sessionmaker(make_engine(url))() as session:
        print(json.dumps(lookup(session, iin, datetime.now(UTC)), ensure_ascii=False))
    return 0
