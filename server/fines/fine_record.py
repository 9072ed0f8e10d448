"""A fine's row and the lifecycle engine's facts, both ways: ``FineRow`` is what the lifecycle needs of a
``fine`` row (read with one Core select, no ORM objects), ``facts_of`` turns it into ``FineFacts`` and
``columns_after`` gives the columns to write back after the engine changed them.

Anchors are stored as JSON ``{"name": "YYYY-MM-DD"}``, pauses as ``[["start", "end" or null]]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select

from core.fines.fine_state import UNPAID, FineState
from core.fines.holiday_calendar import HolidayCalendar
from core.fines.lifecycle_engine import FineFacts, Pause, amount_due, next_on
from core.fines.lifecycle_rules import LifecycleRules
from core.money import Money, currency
from server.db.fines import Fine


@dataclass(frozen=True, slots=True)
class FineRow:
    id: int
    number: str
    jurisdiction: str
    rules: str
    tariff: str
    person_id: str
    person_name: str
    plate: str
    phone: str | None
    article: str
    offence_date: date
    issued_on: date
    currency: str
    full_minor: int
    reduced_minor: int
    discount_deadline: date
    surcharge_minor: int
    due_minor: int
    paid_minor: int
    paid_on: date | None
    paid_ref: str
    state: str
    state_since: date
    anchors: str
    pauses: str
    error: str

    def money(self, minor: int) -> Money:
        return Money(minor, currency(self.currency))


_COLUMNS = [getattr(Fine, name) for name in FineRow.__slots__]


def select_rows() -> Select[Any]:
    """``SELECT`` of the columns of ``FineRow`` from ``fine`` (add the WHERE)."""
    return select(*_COLUMNS)


def rows_of(result: Sequence[Any]) -> list[FineRow]:
    return [FineRow(*r) for r in result]


def dump_anchors(anchors: dict[str, date] | Any) -> str:
    return json.dumps({k: v.isoformat() for k, v in sorted(anchors.items())}, separators=(",", ":"))


def dump_pauses(pauses: tuple[Pause, ...]) -> str:
    return json.dumps(
        [[p.start.isoformat(), p.end.isoformat() if p.end else None] for p in pauses], separators=(",", ":")
    )


def facts_of(row: FineRow) -> FineFacts:
    anchors = {k: date.fromisoformat(v) for k, v in json.loads(row.anchors).items()}
    pauses = tuple(
        Pause(date.fromisoformat(s), date.fromisoformat(e) if e else None) for s, e in json.loads(row.pauses)
    )
    return FineFacts(
        FineState(row.state), anchors, row.full_minor, row.reduced_minor, row.surcharge_minor, pauses
    )


def lifecycle_columns(
    facts: FineFacts, rules: LifecycleRules, today: date, next_day: date | None
) -> dict[str, Any]:
    """The ``fine`` columns that follow from ``facts`` alone on ``today`` (the same for equal facts)."""
    unpaid = facts.state in UNPAID
    return {
        "state": facts.state.value,
        "anchors": dump_anchors(facts.anchors),
        "pauses": dump_pauses(facts.pauses),
        "surcharge_minor": facts.surcharge_minor,
        "unpaid": unpaid,
        "appealed": facts.appealed,
        "due_minor": amount_due(rules, facts, today).minor if unpaid else 0,
        "paid_on": facts.anchors.get("paid"),
        "next_on": next_day,
        "error": "",
    }


def columns_after(
    row_state: str,
    row_since: date,
    facts: FineFacts,
    rules: LifecycleRules,
    today: date,
    calendar: HolidayCalendar,
    now: datetime,
) -> dict[str, Any]:
    """The ``fine`` columns that follow from ``facts`` on ``today`` (the same keys every time)."""
    columns = lifecycle_columns(facts, rules, today, next_on(rules, facts, calendar))
    columns["state_since"] = row_since if facts.state.value == row_state else today
    columns["updated_at"] = now
    return columns
