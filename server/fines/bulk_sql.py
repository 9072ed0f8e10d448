"""Many rows in one statement, the way the fine lifecycle writes a batch: ``insert_rows`` and ``update_rows``.

On PostgreSQL each is ONE statement whatever the row count, its values sent as binary arrays:
``INSERT INTO t (…) SELECT * FROM unnest(…) [ON CONFLICT DO NOTHING]`` and
``UPDATE t SET c = v.c … FROM unnest(…) AS v(…) WHERE t.key = v.key``; the SQL of a shape is made once.
On SQLite they are ``executemany`` of one compiled statement. Values go through each column's bind processor
(``UtcDateTime`` turns aware times into what the column stores), so callers pass what they would pass to
the ORM. Every row of a call must have the same keys.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, insert, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from server.ingest.bulk_write import pg_cursor


def _table(model: Any) -> Table:
    return cast(Table, model.__table__ if hasattr(model, "__table__") else model)


@functools.lru_cache(maxsize=128)
def _shape(table: Table, dialect: Any, names: tuple[str, ...]) -> tuple[list[str], list[Any]]:
    """The array type and bind processor of each column in ``names``."""
    types = [f"{table.c[n].type.compile(dialect=dialect)}[]" for n in names]
    procs = [table.c[n].type.bind_processor(dialect) for n in names]
    return types, procs


def _arrays(
    table: Table, dialect: Any, names: tuple[str, ...], rows: Sequence[dict[str, Any]]
) -> tuple[list[str], list[list[Any]]]:
    types, procs = _shape(table, dialect, names)
    columns = []
    for name, proc in zip(names, procs, strict=True):
        values = [r[name] for r in rows]
        columns.append([proc(v) for v in values] if proc else values)
    return types, columns


def insert_rows(
    session: Session,
    model: Any,
    rows: Sequence[dict[str, Any]],
    ignore_conflicts: bool = False,
    returning: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (``ignore_conflicts``: leave out those a unique index refuses, as ON CONFLICT DO NOTHING);
    returns the ``returning`` columns of the rows inserted, in no set order (none when ``returning`` is empty).
    A column a row leaves out takes its scalar default, as the ORM gives it."""
    if not rows:
        return []
    table = _table(model)
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        stmt = sqlite_insert(table).on_conflict_do_nothing() if ignore_conflicts else insert(table)
        if returning:
            made = session.execute(stmt.returning(*(table.c[n] for n in returning)), list(rows))
            return [tuple(r) for r in made]
        session.execute(stmt, list(rows))
        return []
    defaults = _defaults(table, tuple(rows[0]))
    if defaults:
        rows = [{**defaults, **r} for r in rows]
    names = tuple(rows[0])
    types, columns = _arrays(table, dialect, names, rows)
    q = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {q(table.name)} ({', '.join(q(n) for n in names)}) "
        f"SELECT * FROM unnest({', '.join(f'%b::{t}' for t in types)})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
        + (f" RETURNING {', '.join(q(n) for n in returning)}" if returning else "")
    )
    with pg_cursor(session, f"INSERT INTO {table.name}") as cur:
        cur.execute(sql, columns)
        return [tuple(r) for r in cur.fetchall()] if returning else []


@functools.lru_cache(maxsize=128)
def _defaults(table: Table, names: tuple[str, ...]) -> dict[str, Any]:
    """The scalar defaults of the columns of ``table`` outside ``names``."""
    return {
        c.name: cast(ScalarElementColumnDefault, c.default).arg
        for c in table.columns
        if c.name not in names and c.default is not None and c.default.is_scalar
    }


def update_rows(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], keys: tuple[str, ...] = ("id",)
) -> None:
    """Set the other columns of each row where its ``keys`` match (rows matching nothing change nothing)."""
    if not rows:
        return
    table = _table(model)
    dialect = session.get_bind().dialect
    names = tuple(rows[0])
    sets = [n for n in names if n not in keys]
    if dialect.name != "postgresql":
        where = and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
        stmt = update(table).where(where).values({n: bindparam(f"v_{n}") for n in sets})
        session.execute(
            stmt, [{**{f"k_{k}": r[k] for k in keys}, **{f"v_{n}": r[n] for n in sets}} for r in rows]
        )
        return
    types, columns = _arrays(table, dialect, names, rows)
    q = dialect.identifier_preparer.quote
    t = q(table.name)
    sql = (
        f"UPDATE {t} SET {', '.join(f'{q(n)} = v.{q(n)}' for n in sets)} "
        f"FROM unnest({', '.join(f'%b::{ty}' for ty in types)}) AS v({', '.join(q(n) for n in names)}) "
        f"WHERE {' AND '.join(f'{t}.{q(k)} = v.{q(k)}' for k in keys)}"
    )
    with pg_cursor(session, f"UPDATE {table.name}") as cur:
        cur.execute(sql, columns)


def by_shape(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``rows`` grouped by their set of keys (one statement per group), in first-seen order."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r), []).append(r)
    return list(groups.values())
