"""Many rows in few statements, on SQLite and PostgreSQL: ``insert_ignore`` (new rows; a stored key is left as
it is) and ``upsert`` (a stored key gets the listed columns), both inside the caller's transaction.

On PostgreSQL new rows with a one-column key go by binary ``COPY`` under a savepoint (the stored keys are looked
up only if the key index refuses a row); other inserts and upserts are one ``INSERT … SELECT * FROM unnest(…)``
with one array parameter per column, so the SQL text stays the same whatever the row count. On SQLite they are
``INSERT … ON CONFLICT`` statements run with the rows as parameters. Statements, column lists and type
conversions are worked out once per table and row shape (``functools.lru_cache``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy import LargeBinary, Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# (column name, bind processor or None, default, True if the value is the default and not the row's)
InsertColumn = tuple[str, Any, Any, bool]

# SQL types of our columns -> the names psycopg's binary COPY dumpers go by (anything else: text COPY)
_COPY_TYPES = {
    "VARCHAR": "varchar",
    "TEXT": "text",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
    "BOOLEAN": "bool",
    "BYTEA": "bytea",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


def table_of(model: type[Any]) -> Table:
    """The ``Table`` of an ORM model."""
    return cast(Table, model.__table__)


def is_postgresql(session: Session) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` of many rows (on PostgreSQL one statement)."""
    if not rows:
        return
    if is_postgresql(session):
        if len(table.primary_key.columns) == 1:
            _pg_copy_new(session, table, rows)
        else:
            _pg_unnest_insert(session, table, rows, "ON CONFLICT DO NOTHING")
        return
    session.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)


def upsert(
    session: Session, table: Table, rows: list[dict[str, Any]], key: str, update_cols: Sequence[str]
) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET update_cols`` in one statement (PostgreSQL and SQLite).

    ``rows`` must hold each key at most once (PostgreSQL refuses to touch a row twice in one statement).
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        q = dialect.identifier_preparer.quote
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in update_cols)
        _pg_unnest_insert(session, table, rows, f"ON CONFLICT ({q(key)}) DO UPDATE SET {sets}")
        return
    stmt = sqlite_insert(table)
    statement = stmt.on_conflict_do_update(
        index_elements=[key], set_={c: getattr(stmt.excluded, c) for c in update_cols}
    )
    session.execute(statement, rows)


@contextlib.contextmanager
def pg_cursor(session: Session, what: str) -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor on the session's connection, in its transaction (COPY, unnest inserts, unprepared
    lookups), closed afterwards. A constraint refusing a row becomes SQLAlchemy's ``IntegrityError`` naming
    ``what``, the error the worker redoes a batch on."""
    driver = cast("psycopg.Connection[Any]", session.connection().connection.driver_connection)
    cursor = driver.cursor()
    try:
        yield cursor
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(what, None, exc) from exc
    finally:
        cursor.close()


def copy_under_savepoint(cursor: psycopg.Cursor[Any], copy: Callable[[], None]) -> bool:
    """Run ``copy`` under a savepoint; False, with its effects undone, if a unique index refused a row."""
    cursor.execute("SAVEPOINT pk_copy")
    try:
        copy()
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT pk_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT pk_copy")
    return True


def copy_types(table: Table, names: Sequence[str], dialect: Any) -> list[str] | None:
    """The names psycopg's binary COPY goes by for these columns, or None if one has no entry here."""
    found = [_COPY_TYPES.get(table.c[n].type.compile(dialect=dialect).split("(")[0]) for n in names]
    return None if None in found else cast(list[str], found)


def _pg_copy_new(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """The rows whose (single-column) primary key is not in ``table`` yet, in one ``COPY``; the others are
    left alone, as ``ON CONFLICT DO NOTHING`` would (the first of several with one key wins).

    These rows belong to records new to the inbox, so their keys are almost always new too: the COPY goes
    first, under a savepoint, and only if the primary key refuses a row are the stored keys looked up and
    the COPY made again without them. COPY writes many rows per heap page and WAL record and needs no
    speculative insertion. If the second COPY fails too (another worker inserted a key meanwhile),
    ``IntegrityError``: the worker redoes the batch.
    """
    key = next(iter(table.primary_key.columns)).name
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row[key], row)
    plan = _copy_plan(table, session.get_bind().dialect, frozenset(rows[0]))
    with pg_cursor(session, plan.sql) as cursor:
        if copy_under_savepoint(cursor, lambda: _copy_rows(cursor, plan, first.values())):
            return
        # never prepared, arrays in binary: see README.md, "Benchmarks"
        for (found,) in cursor.execute(plan.existing, [list(first)], prepare=False):
            first.pop(found, None)
        if first:
            _copy_rows(cursor, plan, first.values())


def _copy_rows(cursor: psycopg.Cursor[Any], plan: _CopyPlan, rows: Iterable[dict[str, Any]]) -> None:
    with cursor.copy(plan.sql) as copy:
        if plan.types:
            copy.set_types(plan.types)
        procs = [c[1] for c in plan.columns]
        for row in rows:
            values = [default if filled else row[name] for name, _proc, default, filled in plan.columns]
            copy.write_row([proc(v) if proc else v for v, proc in zip(values, procs, strict=True)])


@dataclass(frozen=True)
class _CopyPlan:
    sql: str  # COPY table (columns) FROM STDIN
    existing: str  # which of an array of primary keys are stored already
    columns: tuple[InsertColumn, ...]
    types: list[str] | None  # the type name of each column for binary COPY; None: text COPY


@functools.lru_cache(maxsize=64)
def _copy_plan(table: Table, dialect: Any, names: frozenset[str]) -> _CopyPlan:
    columns = insert_columns(table, dialect, names)
    q = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(table)
    key = next(iter(table.primary_key.columns))
    types = copy_types(table, [c[0] for c in columns], dialect)
    key_type = key.type.compile(dialect=dialect)
    return _CopyPlan(
        sql=f"COPY {name} ({', '.join(q(c[0]) for c in columns)}) FROM STDIN"
        + (" (FORMAT BINARY)" if types else ""),
        existing=f"SELECT {q(key.name)} FROM {name} WHERE {q(key.name)} = ANY(%b::{key_type}[])",
        columns=columns,
        types=types,
    )


@functools.lru_cache(maxsize=256)
def insert_columns(table: Table, dialect: Any, names: frozenset[str]) -> tuple[InsertColumn, ...]:
    """The columns an insert of rows with keys ``names`` writes, in table order, and how to get each value:
    the row's, or the column's scalar Python default (as an ORM insert would). Made once per shape:
    compiling types and bind processors costs more than dumping a few hundred rows."""
    columns: list[InsertColumn] = []
    for col in table.columns:
        # bytes go to psycopg as they are (bytea); SQLAlchemy's LargeBinary processor only wraps each one
        proc = None if isinstance(col.type, LargeBinary) else col.type.bind_processor(dialect)
        default = col.default
        if col.name in names:
            columns.append((col.name, proc, None, False))
        elif default is not None and getattr(default, "is_scalar", False):
            columns.append((col.name, proc, getattr(default, "arg", None), True))
    return tuple(columns)


@functools.lru_cache(maxsize=256)
def _unnest_sql(table: Table, dialect: Any, names: frozenset[str], conflict: str) -> str:
    q = dialect.identifier_preparer.quote
    columns = insert_columns(table, dialect, names)
    casts = ", ".join(f"%b::{table.c[c[0]].type.compile(dialect=dialect)}[]" for c in columns)
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(q(c[0]) for c in columns)}) "
        f"SELECT * FROM unnest({casts}) {conflict}"
    )


def _pg_unnest_insert(session: Session, table: Table, rows: list[dict[str, Any]], conflict: str) -> None:
    """Many rows in ONE statement with one array parameter per column: ``INSERT … SELECT * FROM unnest(…)``
    (for upserts; plain new rows go by COPY).

    psycopg's executemany sends one statement per row and SQLAlchemy's multi-row VALUES makes psycopg parse
    a huge query each time; this keeps the SQL text constant (prepared once) whatever the row count.
    """
    names = frozenset().union(*(r.keys() for r in rows))
    dialect = session.get_bind().dialect
    params: list[Any] = []
    for name, proc, default, filled in insert_columns(table, dialect, names):
        values = [default] * len(rows) if filled else [r.get(name) for r in rows]
        params.append([proc(v) for v in values] if proc else values)
    sql = _unnest_sql(table, dialect, names, conflict)
    with pg_cursor(session, sql) as cursor:  # in SQL text order; %b: binary arrays, no per-element quoting
        cursor.execute(sql, params)
