"""Benchmark: the unpaid-fines look-up ``GET /api/fines/unpaid?iin=…`` over 1 000 000 fines in PostgreSQL
(the mix of ``fines_data``): p95 latency of sequential requests from a client process to the server in
another process (API key check, rate limit, the query, the audit row and its commit), against the bare
SQL query alone for the same people (psycopg, one connection). Target: p95 < 20 ms.

Env: PATROLKIT_BENCH_DB_URL (a PostgreSQL server; default PATROLKIT_TEST_DB_URL), PATROLKIT_BENCH_FINES
(1000000), PATROLKIT_BENCH_LOOKUPS (2000). Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fines_data import iins, load_fines, pg_database, psycopg_url

FINES = int(os.environ.get("PATROLKIT_BENCH_FINES", "1000000"))
LOOKUPS = int(os.environ.get("PATROLKIT_BENCH_LOOKUPS", "2000"))
TARGET_MS = 20.0
QUERY = (
    "SELECT count(*), coalesce(sum(due_minor), 0), min(currency), min(issued_on) FROM fine "
    "WHERE person_id = %s AND unpaid = true"
)


def serve(url: str, port: int) -> None:
    import uvicorn

    from server.app import create_app
    from server.config import DatabaseSection, KeysSection, ServerConfig

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"pk-lookup-{os.getpid()}"
    config = ServerConfig(
        data_dir=tmp, database=DatabaseSection(url=url), keys=KeysSection(signing_key_file=tmp / "k")
    )
    uvicorn.run(create_app(config), host="127.0.0.1", port=port, log_level="warning")


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94]


def main() -> None:
    import httpx

    from core.iin import parse_iin
    from server.db.base import make_engine, make_sessionmaker, transaction
    from server.fines.api_keys import add_client
    from simulators.demo import free_port

    server = os.environ.get("PATROLKIT_BENCH_DB_URL") or os.environ.get("PATROLKIT_TEST_DB_URL") or ""
    if not server.startswith("postgresql"):
        print("bench/fines_lookup.py wants PostgreSQL: set PATROLKIT_BENCH_DB_URL=postgresql+psycopg://…")
        raise SystemExit(2)
    with pg_database(server) as url:
        t0 = time.perf_counter()
        load_fines(url, FINES)
        print(f"loaded {FINES} fines in {time.perf_counter() - t0:.1f} s")
        engine = make_engine(url)
        with transaction(make_sessionmaker(engine)) as session:
            key = add_client(session, "bench", {"lookup"}, 100_000, datetime.now(UTC))
        engine.dispose()
        rng = random.Random(3)
        owing = iins(max(1, int(FINES * 0.7)))  # the people the fines were given to
        known = set(owing)
        strangers = [i for i in iins(3000, seed=99) if i not in known]
        people = [rng.choice(owing) if rng.random() < 0.7 else rng.choice(strangers) for _ in range(LOOKUPS)]
        assert all(parse_iin(p) for p in people[:10])

        import psycopg

        bare: list[float] = []
        with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
            for p in people[:200]:
                conn.execute(QUERY, (p,)).fetchall()  # warm
            for p in people:
                t = time.perf_counter()
                conn.execute(QUERY, (p,)).fetchall()
                bare.append((time.perf_counter() - t) * 1000)
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", url, str(port)])
        try:
            base_url = f"http://127.0.0.1:{port}"
            with httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                for p in people[:200]:
                    assert client.get("/api/fines/unpaid", params={"iin": p}).status_code == 200  # warm
                timings: list[float] = []
                found = 0
                for p in people:
                    t = time.perf_counter()
                    r = client.get("/api/fines/unpaid", params={"iin": p})
                    timings.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
                    found += r.json()["count"] > 0
        finally:
            proc.terminate()
            proc.wait(30)
    value, base = p95(timings), p95(bare)
    print(f"{LOOKUPS} look-ups ({found} with unpaid fines): p50 {statistics.median(timings):.2f} ms, "
          f"p95 {value:.2f} ms, p99 {statistics.quantiles(timings, n=100)[98]:.2f} ms; "
          f"bare query p95 {base:.2f} ms")  # fmt: skip
    print(
        json.dumps(
            {
                "bench": "fines_lookup",
                "value": round(value, 2),
                "unit": "ms p95",
                "baseline": round(base, 2),
                "ratio": round(value / base, 2),
                "target": f"p95 < {TARGET_MS:.0f} ms",
                "pass": value < TARGET_MS,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
