"""Benchmark: finding a stop among 1 000 000 in PostgreSQL through the review's own query code
(``server.review.search.search_protocols`` with ``SearchParams``: SQLAlchemy, the officer's name, newest
first, at most 101 rows) by protocol number, plate and IIN (each a whole one, as a supervisor types it),
against a bare ``SELECT *`` through psycopg on the same index with the same condition (the number and plate
as a prefix range, the IIN equal). Reports the p95 of each kind; the JSON's value is the worst p95 of the
three, its ratio the worst ratio.

Env: PATROLKIT_BENCH_DB_URL (a PostgreSQL server URL; default PATROLKIT_TEST_DB_URL, else
postgresql+psycopg://root@127.0.0.1:5432/test: the bench creates its OWN database there and drops it at the
end), PATROLKIT_BENCH_STOPS (1000000), PATROLKIT_BENCH_LOOKUPS (300 per kind). The stops are loaded with
COPY after the migrations (indexes included, as in production). Last line: one JSON object.
Target: p95 < 50 ms and at most 3x the bare SELECT.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import psycopg
from sqlalchemy import make_url

from server.db.base import make_engine, make_sessionmaker
from server.db.migrate import upgrade
from server.review.search import SearchParams, prefix_end, search_protocols

STOPS = int(os.environ.get("PATROLKIT_BENCH_STOPS", "1000000"))
LOOKUPS = int(os.environ.get("PATROLKIT_BENCH_LOOKUPS", "300"))
TARGET_MS = 50.0
TARGET_RATIO = 3.0
LETTERS = "ABCDEHKMOPTX"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = (
    "number", "device_id", "jurisdiction", "article", "article_title", "offence_at", "offence_date", "place",
    "driver_name", "driver_iin", "vehicle_plate", "officer_badge", "currency", "fine_units", "unit_value_minor",
    "unit_year", "full_minor", "reduced_minor", "discount_deadline", "legal_basis", "dataset_version", "status",
    "created_at", "received_at",
)  # fmt: skip


@contextmanager
def own_database() -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, psycopg conninfo) of a fresh PostgreSQL database of this run, dropped afterwards."""
    server = (os.environ.get("PATROLKIT_BENCH_DB_URL") or os.environ.get("PATROLKIT_TEST_DB_URL")
              or "postgresql+psycopg://root@127.0.0.1:5432/test")  # fmt: skip
    if not server.startswith("postgresql"):
        sys.exit("bench/review_search.py needs PostgreSQL (PATROLKIT_BENCH_DB_URL=postgresql+psycopg://…)")
    base = make_url(server)
    name = f"pk_bench_{uuid.uuid4().hex[:12]}"

    def conninfo(db: str) -> str:
        info = f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} dbname={db}"
        return info + (f" password={base.password}" if base.password else "")

    with psycopg.connect(conninfo(base.database or "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False), conninfo(name)
    finally:
        with psycopg.connect(conninfo(base.database or "postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                         (name,))  # fmt: skip
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def stop(i: int) -> tuple[object, ...]:
    """The i-th stop: a unique number and IIN, a plate shared by few, 2000 officers over a year."""
    rng = random.Random(i)
    at = T0 + timedelta(seconds=rng.randrange(365 * 86400))
    plate = f"{rng.randrange(1000):03d}{''.join(rng.choice(LETTERS) for _ in range(3))}{rng.randrange(1, 20):02d}"
    return (
        f"KZ-2025-{i:07d}", "DEV-BENCH", "KZ", "592.1", "Превышение скорости", at, at.date(), "Астана",
        f"Водитель {i}", f"{(i * 7919) % 10**12:012d}", plate, f"B-{i % 2000:04d}", "KZT", 5, 393200, 2025,
        1966000, 983000, date(2025, 12, 31), "", "kz-2025.1", "paid", at, at,
    )  # fmt: skip


def load(conninfo: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        conn.execute("INSERT INTO device (device_id, kid, public_key_b64, mqtt_username, mqtt_password_hash, label, "
                     "active, created_at) VALUES ('DEV-BENCH', 'kid-bench', '', 'dev-bench', '', '', true, now())")  # fmt: skip
        conn.execute("INSERT INTO officer (badge, full_name, unit) SELECT 'B-' || lpad(n::text, 4, '0'), "
                     "'Инспектор ' || n, '' FROM generate_series(0, 1999) n")  # fmt: skip
        with conn.cursor().copy(f"COPY protocol ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for i in range(STOPS):
                copy.write_row(stop(i))
        conn.execute("ANALYZE protocol")
        conn.execute("ANALYZE officer")
    return time.perf_counter() - started


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[94] * 1000


def timed_pairs(ours: Callable[[int], int], base: Callable[[int], int], n: int) -> tuple[list[float], list[float]]:
    """Each look-up through the review's code, then the same through the bare SELECT, one after the other,
    so that both meet the same load of a shared machine."""
    a, b = [], []
    for i in range(n):
        for call, out in ((ours, a), (base, b)):
            started = time.perf_counter()
            found = call(i)
            out.append(time.perf_counter() - started)
            assert found >= 1, "every look-up names an existing stop"
    return a, b


def main() -> None:
    with tempfile.TemporaryDirectory(), own_database() as (url, conninfo):
        upgrade(url)
        load_s = load(conninfo)
        print(f"loaded {STOPS} stops with COPY in {load_s:.1f} s", flush=True)
        rng = random.Random(7)
        picks = [stop(rng.randrange(STOPS)) for _ in range(LOOKUPS)]
        plate_sql = "upper(replace(replace(vehicle_plate, ' ', ''), '-', ''))"
        queries = {
            "number": ([SearchParams(number=str(p[0])) for p in picks],
                       "SELECT * FROM protocol WHERE upper(number) ~>=~ %s AND upper(number) ~<~ %s",
                       [(p[0], prefix_end(str(p[0]))) for p in picks]),
            "plate": ([SearchParams(plate=str(p[10])) for p in picks],
                      f"SELECT * FROM protocol WHERE {plate_sql} ~>=~ %s AND {plate_sql} ~<~ %s",
                      [(p[10], prefix_end(str(p[10]))) for p in picks]),
            "iin": ([SearchParams(iin=str(p[9])) for p in picks],
                    "SELECT * FROM protocol WHERE driver_iin = %s", [(p[9],) for p in picks]),
        }  # fmt: skip
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        results: dict[str, tuple[float, float]] = {}
        try:
            with sessions() as session, psycopg.connect(conninfo) as raw:
                for kind, (params, sql, values) in queries.items():
                    for warm in params[:20]:
                        search_protocols(session, warm)
                    for warm in values[:20]:
                        raw.execute(sql, warm).fetchall()
                    ours, base = timed_pairs(
                        lambda i, params=params: len(search_protocols(session, params[i]).rows),  # type: ignore[misc]
                        lambda i, sql=sql, values=values: len(raw.execute(sql, values[i]).fetchall()),  # type: ignore[misc]
                        LOOKUPS,
                    )
                    results[kind] = (p95(ours), p95(base))
                    session.rollback()
                    print(f"{kind:7s} p95 {results[kind][0]:7.2f} ms (review code)   {results[kind][1]:7.2f} ms (bare SELECT)"
                          f"   ratio {results[kind][0] / results[kind][1]:5.2f}", flush=True)  # fmt: skip
        finally:
            engine.dispose()
    slowest = max(results, key=lambda k: results[k][0])
    value, baseline = results[slowest]
    ratio = max(ours / base for ours, base in results.values())
    print(json.dumps({
        "bench": "review_search_p95_1m_stops", "value": round(value, 2), "unit": "ms",
        "baseline": round(baseline, 2), "ratio": round(ratio, 2),
        "target": f"p95 < {TARGET_MS:.0f} ms and <= {TARGET_RATIO:.0f}x a bare indexed SELECT",
        "pass": value < TARGET_MS and ratio <= TARGET_RATIO,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
