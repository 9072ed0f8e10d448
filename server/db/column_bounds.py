"""What a column can hold, read once from its SQL type: the longest string of a ``VARCHAR(n)`` and the integer
range of an ``INTEGER``/``BIGINT``/``SMALLINT``, the same on every backend (SQLite would store more; the server
refuses it anyway, so a record accepted on SQLite is accepted on PostgreSQL too).

``too_big(bound, value)`` names a value beyond its column, so that it is refused with a reason before any
insert instead of failing the transaction (PostgreSQL) or overflowing the driver (SQLite), and is never
truncated. Text, float, date and binary columns have no bound here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, String, Table
from sqlalchemy.types import TypeEngine

INT_RANGES: tuple[tuple[type[TypeEngine[Any]], tuple[int, int]], ...] = (
    (SmallInteger, (-(2**15), 2**15 - 1)),  # before Integer: both are subclasses of it
    (BigInteger, (-(2**63), 2**63 - 1)),
    (Integer, (-(2**31), 2**31 - 1)),
)


@dataclass(frozen=True, slots=True)
class ColumnBound:
    """The limit of one column: ``max_chars`` for a string, ``low``..``high`` for an integer."""

    name: str
    max_chars: int | None = None
    low: int | None = None
    high: int | None = None


def column_bound(name: str, sql_type: TypeEngine[Any]) -> ColumnBound | None:
    """The bound of a column of this type, or None if it has none here."""
    if isinstance(sql_type, String) and sql_type.length is not None:
        return ColumnBound(name, max_chars=sql_type.length)  # String(n) without n (TEXT) is unbounded
    for kind, (low, high) in INT_RANGES:
        if isinstance(sql_type, kind):
            return ColumnBound(name, low=low, high=high)
    return None


@functools.cache
def table_bounds(table: Table) -> dict[str, ColumnBound]:
    """Column name -> its bound, for every bounded column of ``table`` (made once per table)."""
    found = {}
    for column in table.columns:
        bound = column_bound(column.name, column.type)
        if bound is not None:
            found[column.name] = bound
    return found


def too_big(bound: ColumnBound, value: Any) -> str | None:
    """Why ``value`` does not fit the column, or None if it does (None and other types are not checked)."""
    if bound.max_chars is not None:
        if type(value) is str and len(value) > bound.max_chars:
            return f"{len(value)} characters, the column holds at most {bound.max_chars}"
        return None
    if type(value) is int and not bound.low <= value <= bound.high:  # type: ignore[operator]
        return f"{value} is outside {bound.low}..{bound.high}"
    return None
