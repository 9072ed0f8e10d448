"""The appealed mark: an open appeal or complaint about a fine (named by its number, which for a stop is the
protocol number) stops its clocks until it is decided. The supervisor workspace's cases call
``open_appeal`` and ``close_appeal``; ``patrol-server fines appeal`` does the same by hand.

Rejected: the clocks run again, every running period longer by the paused days. Upheld: the fine is
cancelled, and money already paid for it goes to a refund case.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.fines.lifecycle_engine import EventRefused, FineFacts, Happening
from core.fines.lifecycle_engine import close_appeal as close_pause
from core.fines.lifecycle_engine import open_appeal as open_pause
from core.structured_log import log_event
from server.db.fines import Fine
from server.fines.fine_record import FineRow, columns_after, facts_of, rows_of, select_rows
from server.fines.issuing import refund_row
from server.fines.payments import lock_fine_by_number
from server.fines.rules_book import calendar_for, local_day, rules_by_label
from server.fines.step_effects import Changes, event_row, write

log = logging.getLogger(__name__)


class UnknownFine(LookupError):
    pass


def _locked(session: Session, number: str) -> FineRow:
    fine_id = lock_fine_by_number(session, number)
    if fine_id is None:
        raise UnknownFine(f"no fine {number}")
    return rows_of(session.execute(select_rows().where(Fine.id == fine_id)).all())[0]


def _save(session: Session, row: FineRow, facts: FineFacts, happening: Happening, now: datetime,
          changes: Changes) -> None:  # fmt: skip
    rules = rules_by_label(session, row.rules)
    today = local_day(rules, now)
    columns = columns_after(
        row.state, row.state_since, facts, rules, today, calendar_for(row.jurisdiction), now
    )
    changes.fines.append({"id": row.id, **columns})
    changes.events.append(event_row(row.id, happening, now))
    write(session, changes)


def open_appeal(session: Session, number: str, on: date, reference: str, now: datetime) -> Happening:
    """Mark fine ``number`` appealed from ``on``; ``EventRefused`` if it cannot be (already open, closed…)."""
    row = _locked(session, number)
    rules = rules_by_label(session, row.rules)
    if on > local_day(rules, now):
        raise EventRefused(f"an appeal cannot open in the future ({on})")
    facts, happening = open_pause(facts_of(row), on, reference)
    _save(session, row, facts, happening, now, Changes())
    log_event(log, "fines.appeal_opened", fine=number, on=on.isoformat(), reference=reference)
    return happening


def close_appeal(
    session: Session, number: str, on: date, upheld: bool, reference: str, now: datetime
) -> Happening:
    """Decide the open appeal of fine ``number``."""
    row = _locked(session, number)
    rules = rules_by_label(session, row.rules)
    if on > local_day(rules, now):
        raise EventRefused(f"an appeal cannot be decided in the future ({on})")
    facts, happening = close_pause(facts_of(row), on, upheld, reference)
    changes = Changes()
    if upheld and row.paid_minor:
        note = f"appeal upheld ({reference}): the {row.paid_minor} paid ({row.paid_ref}) goes back"
        changes.refunds.append(
            refund_row("appeal_upheld", row.paid_minor, row.currency, now, note, fine_id=row.id)
        )
    _save(session, row, facts, happening, now, changes)
    log_event(log, "fines.appeal_closed", fine=number, on=on.isoformat(), upheld=upheld, reference=reference)
    return happening


def is_appealed(session: Session, number: str) -> bool:
    return bool(session.scalar(select(Fine.appealed).where(Fine.number == number)))
