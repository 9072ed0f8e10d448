"""Delivery outcomes of postal notices, from the post's API or its daily file.

An outcome names the notice by its tracking number (``<fine number>/<step>``, printed on the notice), says
``delivered`` or ``undelivered`` and when. Each is applied on its own (``lifecycle_engine.record_delivery``):
the same outcome again changes nothing, a contradicting one or one for an unknown notice is refused with the
reason, and the rest still apply. The CSV file has a header ``tracking,outcome,date``; a malformed line
refuses the whole file, naming the line, before anything is stored.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from core.fines import FineError
from core.fines.lifecycle_engine import record_delivery
from core.structured_log import log_event
from server.db.fine_notices import PostalNotice
from server.db.fines import Fine
from server.fines.csv_files import csv_lines
from server.fines.fine_record import columns_after, facts_of, rows_of, select_rows
from server.fines.payments import lock_fine_by_number
from server.fines.rules_book import calendar_for, local_day, rules_by_label
from server.fines.step_effects import Changes, event_row, write

log = logging.getLogger(__name__)
TRACKING = re.compile(r"^([A-Za-z0-9][A-Za-z0-9./_-]{0,63})/([a-z][a-z0-9_]{0,31})$")
MAX_OUTCOME_FILE_BYTES = 64 * 1024 * 1024


class OutcomeFileError(ValueError):
    """A delivery outcome file that cannot be read; the message names the line."""


class DeliveryOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracking: str = Field(
        pattern=TRACKING.pattern, description="<fine number>/<step>, as printed on the notice"
    )
    outcome: Literal["delivered", "undelivered"]
    on: date


class OutcomeResult(BaseModel):
    tracking: str
    result: Literal["applied", "repeated", "refused"]
    detail: str = ""


def apply_outcome(session: Session, o: DeliveryOutcome, source: str, now: datetime) -> OutcomeResult:
    """Apply one outcome in the caller's transaction."""
    m = TRACKING.match(o.tracking)
    assert m is not None
    number, step = m.group(1), m.group(2)
    fine_id = lock_fine_by_number(session, number)
    if fine_id is None:
        return OutcomeResult(tracking=o.tracking, result="refused", detail=f"no fine {number}")
    row = rows_of(session.execute(select_rows().where(Fine.id == fine_id)).all())[0]
    rules = rules_by_label(session, row.rules)
    today = local_day(rules, now)
    if o.on > today:
        return OutcomeResult(
            tracking=o.tracking, result="refused", detail=f"dated {o.on}, after today ({today})"
        )
    try:
        facts, happening = record_delivery(rules, facts_of(row), step, o.outcome == "delivered", o.on)
    except FineError as exc:
        return OutcomeResult(tracking=o.tracking, result="refused", detail=str(exc))
    if happening is None:
        return OutcomeResult(tracking=o.tracking, result="repeated")
    columns = columns_after(
        row.state, row.state_since, facts, rules, today, calendar_for(row.jurisdiction), now
    )
    write(session, Changes(fines=[{"id": fine_id, **columns}], events=[event_row(fine_id, happening, now)]))
    session.execute(
        update(PostalNotice)
        .where(and_(PostalNotice.fine_id == fine_id, PostalNotice.step == step))
        .values(status=o.outcome, outcome_on=o.on, outcome_source=source)
    )
    log_event(log, "fines.delivery_outcome", fine=number, step=step, outcome=o.outcome, source=source)
    return OutcomeResult(tracking=o.tracking, result="applied")


def parse_outcome_file(data: bytes) -> list[DeliveryOutcome]:
    """The outcomes of a CSV file (``tracking,outcome,date``); ``OutcomeFileError`` naming the first bad line."""
    out: list[DeliveryOutcome] = []
    lines = csv_lines(data, ("tracking", "outcome", "date"), OutcomeFileError, "file", MAX_OUTCOME_FILE_BYTES)
    for line, (tracking, outcome, day) in lines:
        try:
            out.append(DeliveryOutcome.model_validate({"tracking": tracking, "outcome": outcome, "on": day}))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise OutcomeFileError(f"line {line}: {first['loc'][0]}: {first['msg']}") from None
    return out


def notices_of(session: Session, fine_id: int) -> list[PostalNotice]:
    return list(
        session.scalars(select(PostalNotice).where(PostalNotice.fine_id == fine_id).order_by(PostalNotice.id))
    )
