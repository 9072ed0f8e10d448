"""Rows a record type writes besides its own table, named by its entry in ``server.ingest.record_types``:
a protocol's officer (before the protocols, which refer to it), and after the batch's rows are all written,
its driver's name as search keys and the fines of its protocols (which read the batch's payments)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.name_search import name_keys
from server.db.protocols import Officer, ProtocolNameKey
from server.fines.issuing import fines_for_synced_protocols
from server.ingest.bulk_write import insert_ignore, table_of

if TYPE_CHECKING:
    from server.ingest.outcome import Accepted

Written = Sequence[tuple["Accepted", dict[str, Any]]]  # records and the rows written of them, in stream order


def officers(session: Session, now: datetime, written: Written) -> None:
    """The officer named in a protocol (a row per badge; a stored one is left as it is)."""
    rows = [
        {"badge": a.body.officer_badge, "full_name": a.body.officer_name, "unit": ""}  # type: ignore[attr-defined]
        for a, _row in written
        if a.body.officer_name  # type: ignore[attr-defined]
    ]
    insert_ignore(session, table_of(Officer), rows)


def driver_name_keys(session: Session, now: datetime, written: Written) -> None:
    """The driver's name as search keys (``server.review.search``); a later record of a protocol adds none."""
    latest = {row["number"]: row for _a, row in written}
    rows = [
        {"protocol_number": number, "key": key[:64]}
        for number, row in latest.items()
        for key in name_keys(row["driver_name"])
    ]
    insert_ignore(session, table_of(ProtocolNameKey), rows)


def fines(session: Session, now: datetime, written: Written) -> None:
    """The fines of the batch's protocols (``server.fines.issuing``), after its payments are stored."""
    latest = {row["number"]: row for _a, row in written}
    fines_for_synced_protocols(session, now, list(latest.values()))
