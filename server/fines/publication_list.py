"""The publication list (GE: a fine published is deemed delivered after a period): which fines, since when,
what is due. As rows for the back-office page and as CSV to publish. Only what a published receipt shows:
the fine's number, plate, article, offence date, amount due and dates; no name, no personal number.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.fine_notices import Publication
from server.db.fines import Fine

COLUMNS = (
    "fine",
    "plate",
    "article",
    "offence_date",
    "due_minor",
    "currency",
    "published_on",
    "deemed_on",
    "state",
)


@dataclass(frozen=True)
class Published:
    fine: str
    plate: str
    article: str
    offence_date: date
    due_minor: int
    currency: str
    published_on: date
    deemed_on: date | None
    state: str


def publications(
    session: Session, since: date | None = None, until: date | None = None, limit: int | None = None
) -> list[Published]:
    query = (
        select(Fine.number, Fine.plate, Fine.article, Fine.offence_date, Fine.due_minor, Fine.currency,
               Publication.published_on, Publication.deemed_on, Fine.state)
        .join(Fine, Fine.id == Publication.fine_id)
        .order_by(Publication.published_on, Fine.number)
    )  # fmt: skip
    if since is not None:
        query = query.where(Publication.published_on >= since)
    if until is not None:
        query = query.where(Publication.published_on <= until)
    if limit is not None:
        query = query.limit(limit)
    return [Published(*row) for row in session.execute(query)]


def publication_csv(session: Session, since: date | None = None, until: date | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for p in publications(session, since, until):
        writer.writerow([p.fine, p.plate, p.article, p.offence_date, p.due_minor, p.currency, p.published_on,
                         p.deemed_on or "", p.state])  # fmt: skip
    return out.getvalue()
