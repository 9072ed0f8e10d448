"""The latest state of each payment attempt (``payment_attempt`` records, conflict rule ``higher_revision``):
a record replaces the stored row only if it is of the same device and of a higher revision, so a resent or
reordered older state never wins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def store_attempts(session: Session, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (in (device, epoch, seq) order) inside the ingest's transaction."""
    attempts: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = attempts.get(row[key])
        if held is None or (held["device_id"] == row["device_id"] and row["revision"] > held["revision"]):
            attempts[row[key]] = row
    if not attempts:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    changing = [c.name for c in table.columns if c.name not in (key, "device_id")]
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[key],
            set_={c: stmt.excluded[c] for c in changing},
            where=(table.c.device_id == stmt.excluded.device_id)
            & (table.c.revision < stmt.excluded.revision),
        ),
        list(attempts.values()),
    )
