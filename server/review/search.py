"""Finding stops: the search's parameters as a pydantic model, and the one query that answers them (the
benchmark ``bench/review_search.py`` measures this very code).

- protocol number: a prefix, case-insensitive; plate: a prefix, spaces and dashes ignored; IIN: a prefix of
  digits; officer badge: exact; driver's name: every word, in Cyrillic or Latin letters, a spelling of a
  word of the name (``core.name_search``; the last word may be a beginning); a day, or a range of days;
- no criterion at all: the most recent stops.

Patterns are made here (``prefix%`` with ``%``, ``_`` and the escape character escaped), so PostgreSQL sees
a constant prefix and uses the expression indexes of s0018.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from core.name_search import name_keys, name_matches
from server.db.protocols import Officer, Protocol, ProtocolNameKey

MAX_PROTOCOL_NUMBER_CHARS = 32  # as synced (core.sync.records): any characters
SEARCH_LIMIT = 100
RECENT_LIMIT = 20
NAME_CANDIDATES = 1000  # rows read for a name search before the spelling check picks the matches
BAD_PROTOCOL_NUMBER = f"номер протокола / protocol number: 1-{MAX_PROTOCOL_NUMBER_CHARS} characters, no NUL"
_BADGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./-]{0,31}$")
_DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
ESCAPE = "\\"


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _day(value: Any) -> Any:
    value = _blank_is_none(value)
    if isinstance(value, str):
        value = value.strip()
        try:
            return date.fromisoformat(value) if _DAY.fullmatch(value) else _bad_day()
        except ValueError:
            _bad_day()
    return value


def _bad_day() -> None:
    raise ValueError("дата / date: expected YYYY-MM-DD")


Day = Annotated[date | None, BeforeValidator(_day)]


class SearchParams(BaseModel):
    """The search form's fields (all optional); anything else in the query string is refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    number: str = Field("", description="protocol number or its beginning")
    plate: str = Field("", description="vehicle plate or its beginning (spaces and dashes ignored)")
    badge: str = Field("", description="officer badge, exact")
    iin: str = Field("", description="the driver's IIN or its beginning")
    name: str = Field("", description="the driver's name in Cyrillic or Latin letters")
    date: Day = Field(None, description="one day of the offence (local date)")
    date_from: Day = Field(None, description="first day of a range")
    date_to: Day = Field(None, description="last day of a range")

    @field_validator("number")
    @classmethod
    def _number(cls, v: str) -> str:
        if len(v) > MAX_PROTOCOL_NUMBER_CHARS or "\x00" in v:
            raise ValueError(BAD_PROTOCOL_NUMBER)
        return v

    @field_validator("plate")
    @classmethod
    def _plate(cls, v: str) -> str:
        plate = re.sub(r"[\s-]", "", v).upper()
        if plate and (len(plate) > 16 or not plate.isalnum()):
            raise ValueError("госномер / plate: up to 16 letters and digits")
        return plate

    @field_validator("badge")
    @classmethod
    def _badge(cls, v: str) -> str:
        if v and not _BADGE.fullmatch(v):
            raise ValueError("жетон / badge: up to 32 letters, digits, '-', '/' or '.'")
        return v

    @field_validator("iin")
    @classmethod
    def _iin(cls, v: str) -> str:
        iin = re.sub(r"\s", "", v)
        if iin and not re.fullmatch(r"[0-9]{1,12}", iin, re.ASCII):
            raise ValueError("ИИН / IIN: up to 12 digits")
        return iin

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > 200 or "\x00" in v:
            raise ValueError("ФИО / name: up to 200 characters")
        if v and not name_keys(v):
            raise ValueError("ФИО / name: type at least one letter")
        return v

    @model_validator(mode="after")
    def _range(self) -> SearchParams:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("период / date range: the last day is before the first")
        return self

    @property
    def empty(self) -> bool:
        return not (
            self.number or self.plate or self.badge or self.iin or self.name
            or self.date or self.date_from or self.date_to
        )  # fmt: skip


SEARCH_FIELDS = tuple(SearchParams.model_fields)


@dataclass(frozen=True)
class Found:
    protocol: Protocol
    officer_name: str | None


@dataclass(frozen=True)
class SearchResult:
    rows: list[Found]
    more: bool


def like_prefix(text: str) -> str:
    """``text`` as the beginning of a LIKE pattern (``%``, ``_`` and the escape character escaped)."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return escaped + "%"


def plate_expression() -> ColumnElement[str]:
    """The plate as searched: upper case, without spaces and dashes (indexed on PostgreSQL by s0018)."""
    return func.upper(func.replace(func.replace(Protocol.vehicle_plate, " ", ""), "-", ""))


def number_expression() -> ColumnElement[str]:
    return func.upper(Protocol.number)


def search_statement(params: SearchParams, limit: int) -> Select[tuple[Protocol, str | None]]:
    """The SELECT for ``params`` (newest first), at most ``limit`` rows."""
    officer_name = cast(ColumnElement[str | None], Officer.full_name)  # None when the officer is not known
    stmt = select(Protocol, officer_name).outerjoin(Officer, Officer.badge == Protocol.officer_badge)
    if params.number:
        stmt = stmt.where(number_expression().like(like_prefix(params.number.upper()), escape=ESCAPE))
    if params.plate:
        stmt = stmt.where(plate_expression().like(like_prefix(params.plate), escape=ESCAPE))
    if params.iin:
        if len(params.iin) == 12:
            stmt = stmt.where(Protocol.driver_iin == params.iin)
        else:
            stmt = stmt.where(Protocol.driver_iin.like(like_prefix(params.iin), escape=ESCAPE))
    if params.badge:
        stmt = stmt.where(Protocol.officer_badge == params.badge)
    if params.date:
        stmt = stmt.where(Protocol.offence_date == params.date)
    if params.date_from:
        stmt = stmt.where(Protocol.offence_date >= params.date_from)
    if params.date_to:
        stmt = stmt.where(Protocol.offence_date <= params.date_to)
    for key in name_keys(params.name):
        having = select(ProtocolNameKey.protocol_number).where(
            ProtocolNameKey.key.like(like_prefix(key), escape=ESCAPE)
        )
        stmt = stmt.where(Protocol.number.in_(having))
    return stmt.order_by(Protocol.offence_at.desc(), Protocol.number).limit(limit)


def search_protocols(session: Session, params: SearchParams, limit: int = SEARCH_LIMIT) -> SearchResult:
    """The stops that answer ``params``; for no criterion, the most recent ``RECENT_LIMIT`` stops."""
    if params.empty:
        stmt = search_statement(params, RECENT_LIMIT)
        return SearchResult([Found(p, n) for p, n in session.execute(stmt).tuples()], False)
    read = NAME_CANDIDATES if params.name else limit + 1
    rows = [Found(p, n) for p, n in session.execute(search_statement(params, read)).tuples()]
    if params.name:
        rows = [r for r in rows if name_matches(params.name, r.protocol.driver_name)]
    return SearchResult(rows[:limit], len(rows) > limit)


def search_query_string(params: SearchParams) -> str:
    """The query string of ``params`` (only the fields given), to link back to the same search."""
    from urllib.parse import urlencode

    values = params.model_dump(exclude_defaults=True)
    return urlencode({k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()})
