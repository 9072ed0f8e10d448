"""Business rows of the payment attempt records, kept apart from the rest of the ingest: the latest state of
each attempt (``payment_attempt``: a record replaces the stored row only if it is of the same device and of a
higher revision, so a resent or reordered older state never wins) and settlements of attempts in doubt
(``payment_settlement``: written once, never changed)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.sync.records import PaymentAttemptRecordV1, PaymentSettlementRecordV1
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy

STREAMS = frozenset({PaymentAttemptRecordV1.record_type, PaymentSettlementRecordV1.record_type})


class Accepted(Protocol):
    """What the ingest knows of a record newly stored in the inbox (``pipeline._Accepted``)."""

    device_id: str

    @property
    def head(self) -> Any: ...

    @property
    def body(self) -> Any: ...


def _insert(session: Session, table: Table) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def store_payment_records(session: Session, now: datetime, records: Iterable[Accepted]) -> None:
    """Write the business rows of ``records`` (in (device, epoch, seq) order) inside the ingest's transaction."""
    attempts: dict[str, dict[str, Any]] = {}
    settlements: list[dict[str, Any]] = []
    for a in records:
        row = {**a.body.__dict__, "record_id": a.head.id, "device_id": a.device_id, "received_at": now}
        if a.head.stream == PaymentAttemptRecordV1.record_type:
            row.setdefault("card_read_at", None)  # v1 has no step times; every row of one INSERT has every key
            row.setdefault("authorising_at", None)
            held = attempts.get(row["attempt_id"])
            if held is None or (held["device_id"] == row["device_id"] and row["revision"] > held["revision"]):
                attempts[row["attempt_id"]] = row
        elif a.head.stream == PaymentSettlementRecordV1.record_type:
            settlements.append(row)
    if attempts:
        table = cast(Table, PaymentAttemptCopy.__table__)
        stmt = _insert(session, table)
        changing = [c.name for c in table.columns if c.name not in ("attempt_id", "device_id")]
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["attempt_id"],
                set_={c: stmt.excluded[c] for c in changing},
                where=(table.c.device_id == stmt.excluded.device_id)
                & (table.c.revision < stmt.excluded.revision),
            ),
            list(attempts.values()),
        )
    if settlements:
        table = cast(Table, PaymentSettlementCopy.__table__)
        session.execute(
            _insert(session, table).on_conflict_do_nothing(index_elements=["settlement_id"]), settlements
        )
