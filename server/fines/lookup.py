"""The unpaid-fines look-up for other state systems and the roadside: for one person, how many fines are
unpaid, the total due today and the date of the oldest, and nothing else. Every answer is audited
(``lookup_audit``: client, person, when, from where, count). One indexed query on the unpaid fines
(``ix_fine_person_unpaid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.api_clients import LookupAudit
from server.db.fines import Fine


@dataclass(frozen=True)
class UnpaidSummary:
    person_id: str
    count: int
    total_due_minor: int
    currency: str | None
    oldest: date | None


_UNPAID = Fine.unpaid == True  # noqa: E712 - the partial index's own predicate, spelt as it is


def unpaid_summary(session: Session, person_id: str) -> UnpaidSummary:
    count, total, currency, oldest = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Fine.due_minor), 0),
            func.min(Fine.currency),
            func.min(Fine.issued_on),
        ).where(Fine.person_id == person_id, _UNPAID)
    ).one()
    return UnpaidSummary(person_id, int(count), int(total), currency, oldest)


def audit(session: Session, client: str, summary: UnpaidSummary, remote: str, now: datetime) -> None:
    session.add(
        LookupAudit(
            at=now, client=client, person_id=summary.person_id, unpaid_count=summary.count, remote=remote[:64]
        )
    )
