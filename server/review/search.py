"""Finding stops: the search's parameters as a pydantic model, and the one query that answers them (the
benchmark ``bench/review_search.py`` measures this very code).

- protocol number: a prefix, case-insensitive; plate: a prefix, spaces and dashes ignored; IIN: a prefix of
  digits; officer badge: exact; driver's name: every word, in Cyrillic or Latin letters, a spelling of a
  word of the name (``core.name_search``; the last word may be a beginning); a day, or a range of days;
- no criterion at all: the most recent stops.

Prefixes are ranges in the operators of the ``text_pattern_ops`` indexes of s0018 on PostgreSQL (so a
prepared statement's generic plan uses the index for any value), ``LIKE 'prefix%'`` elsewhere; each shape of
search is one statement with bound parameters, built once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

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
class StopSummary:
    """What a result row shows of a stop (read as plain columns: no ORM object is built per row)."""

    number: str
    offence_at: datetime
    article: str
    vehicle_plate: str
    driver_name: str
    driver_iin: str
    officer_badge: str
    status: str


@dataclass(frozen=True)
class Found:
    protocol: StopSummary
    officer_name: str | None


@dataclass(frozen=True)
class SearchResult:
    rows: list[Found]
    more: bool


def like_prefix(text: str) -> str:
    """``text`` as the beginning of a LIKE pattern (``%``, ``_`` and the escape character escaped)."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return escaped + "%"


def prefix_end(text: str) -> str:
    """The smallest text after every text that begins with ``text`` (its last character raised by one)."""
    return text[:-1] + chr(ord(text[-1]) + 1) if text and ord(text[-1]) < 0x10FFFF else text + "\U0010ffff"


def plate_expression() -> ColumnElement[str]:
    """The plate as searched: upper case, without spaces and dashes (indexed on PostgreSQL by s0018)."""
    return func.upper(func.replace(func.replace(Protocol.vehicle_plate, " ", ""), "-", ""))


def number_expression() -> ColumnElement[str]:
    return func.upper(Protocol.number)


SUMMARY_COLUMNS = tuple(getattr(Protocol, name) for name in StopSummary.__dataclass_fields__)


def _starts_with(column: ColumnElement[str] | InstrumentedAttribute[str], name: str, postgresql: bool) -> ColumnElement[bool]:
    """``column`` begins with the bound value ``name``. On PostgreSQL a range in the operators of the
    ``text_pattern_ops`` indexes (``~>=~``, ``~<~``): a prepared statement's generic plan uses the index for
    any value, so PostgreSQL need not plan each look-up again; elsewhere ``LIKE 'value%'``."""
    if postgresql:
        return column.op("~>=~", is_comparison=True)(bindparam(name)) & column.op("~<~", is_comparison=True)(
            bindparam(f"{name}_end")
        )
    return column.like(bindparam(f"{name}_like"), escape=ESCAPE)


@functools.lru_cache(maxsize=256)
def _statement(
    shape: tuple[str, ...], name_keys_count: int, limit: int, postgresql: bool
) -> tuple[Select[Any], frozenset[str]]:
    """The SELECT of one shape of search (which fields are given), with bound parameters, and the names of
    its parameters: built once."""
    officer_name = cast(
        ColumnElement[str | None],
        select(Officer.full_name).where(Officer.badge == Protocol.officer_badge).scalar_subquery(),
    )  # looked up for the rows returned only (a join made PostgreSQL hash the whole officer table)
    stmt = select(*SUMMARY_COLUMNS, officer_name)
    if "number" in shape:
        stmt = stmt.where(_starts_with(number_expression(), "number", postgresql))
    if "plate" in shape:
        stmt = stmt.where(_starts_with(plate_expression(), "plate", postgresql))
    if "iin" in shape:
        stmt = stmt.where(Protocol.driver_iin == bindparam("iin"))
    if "iin_prefix" in shape:
        stmt = stmt.where(_starts_with(Protocol.driver_iin, "iin_prefix", postgresql))
    if "badge" in shape:
        stmt = stmt.where(Protocol.officer_badge == bindparam("badge"))
    if "date" in shape:
        stmt = stmt.where(Protocol.offence_date == bindparam("date"))
    if "date_from" in shape:
        stmt = stmt.where(Protocol.offence_date >= bindparam("date_from"))
    if "date_to" in shape:
        stmt = stmt.where(Protocol.offence_date <= bindparam("date_to"))
    for i in range(name_keys_count):
        having = select(ProtocolNameKey.protocol_number).where(_starts_with(ProtocolNameKey.key, f"key{i}", postgresql))
        stmt = stmt.where(Protocol.number.in_(having))
    stmt = stmt.order_by(Protocol.offence_at.desc(), Protocol.number).limit(limit)
    return stmt, frozenset(stmt.compile().params)


def _prefix_values(name: str, text: str) -> dict[str, str]:
    return {name: text, f"{name}_end": prefix_end(text), f"{name}_like": like_prefix(text)}


def search_statement(params: SearchParams, limit: int, postgresql: bool = False) -> tuple[Select[Any], dict[str, Any]]:
    """The SELECT for ``params`` (newest first, at most ``limit`` rows: the summary's columns, then the
    officer's name, None when the officer is not known) and the values of its parameters."""
    values: dict[str, Any] = {}
    shape: list[str] = []
    if params.number:
        shape.append("number")
        values |= _prefix_values("number", params.number.upper())
    if params.plate:
        shape.append("plate")
        values |= _prefix_values("plate", params.plate)
    if params.iin:
        shape.append("iin" if len(params.iin) == 12 else "iin_prefix")
        values |= {"iin": params.iin} if len(params.iin) == 12 else _prefix_values("iin_prefix", params.iin)
    for name in ("badge", "date", "date_from", "date_to"):
        if getattr(params, name):
            shape.append(name)
            values[name] = getattr(params, name)
    keys = name_keys(params.name)
    for i, key in enumerate(keys):
        values |= _prefix_values(f"key{i}", key)
    stmt, wanted = _statement(tuple(shape), len(keys), limit, postgresql)
    return stmt, {k: v for k, v in values.items() if k in wanted}


def search_protocols(session: Session, params: SearchParams, limit: int = SEARCH_LIMIT) -> SearchResult:
    """The stops that answer ``params``; for no criterion, the most recent ``RECENT_LIMIT`` stops."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if params.empty:
        return SearchResult(_found(session, *search_statement(params, RECENT_LIMIT, postgresql)), False)
    read = NAME_CANDIDATES if params.name else limit + 1
    rows = _found(session, *search_statement(params, read, postgresql))
    if params.name:
        rows = [r for r in rows if name_matches(params.name, r.protocol.driver_name)]
    return SearchResult(rows[:limit], len(rows) > limit)


def _found(session: Session, stmt: Select[Any], values: dict[str, Any]) -> list[Found]:
    """Rows as plain tuples through the session's connection (no ORM entities to build)."""
    width = len(SUMMARY_COLUMNS)
    return [Found(StopSummary(*row[:width]), row[width]) for row in session.connection().execute(stmt, values)]


def search_query_string(params: SearchParams) -> str:
    """The query string of ``params`` (only the fields given), to link back to the same search."""
    from urllib.parse import urlencode

    values = params.model_dump(exclude_defaults=True)
    return urlencode({k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()})
