"""Benchmark: the daily run over 1 000 000 open fines in PostgreSQL (a realistic mix of states, see
``fines_data``), with the log gateway, against a bare SQL pass over the same due rows.

Both start from copies of one template database (``CREATE DATABASE … TEMPLATE``) and run in fresh processes:

- **baseline**: in batches, ``SELECT <the row, as the run reads it> … WHERE next_on <= D ORDER BY next_on, id
  LIMIT n FOR UPDATE`` and one ``UPDATE … FROM unnest(…)`` writing state and next_on back, a commit per
  batch; no rules, no history, no notifications;
- **run**: ``run_daily`` for day D (sweep, unmatched payments, every due fine through the rules, history,
  SMS, postal notices, documents, hand-over batches) and then ``send_due`` through the log gateway.

Each child first reads its copy once (a cold copy costs either side more than the work). Reports both
times (the best of the rounds), their ratio (target ≤ 2×) and the run's peak memory (target < 512 MB, ``ru_maxrss`` of
its own process). Env: PATROLKIT_BENCH_DB_URL (a PostgreSQL server; default PATROLKIT_TEST_DB_URL),
PATROLKIT_BENCH_FINES (1000000), PATROLKIT_BENCH_BATCH (2000), PATROLKIT_BENCH_ROUNDS (3).
Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fines_data import RUN_DAY, load_fines, pg_database, psycopg_url
from sqlalchemy import make_url

FINES = int(os.environ.get("PATROLKIT_BENCH_FINES", "1000000"))
BATCH = int(os.environ.get("PATROLKIT_BENCH_BATCH", "2000"))
ROUNDS = int(os.environ.get("PATROLKIT_BENCH_ROUNDS", "3"))
TARGET_RATIO = 2.0
TARGET_MB = 512


# the due rows as the run reads them (the columns of FineRow), oldest first, locked
COLUMNS = (
    "id, number, jurisdiction, rules, tariff, person_id, person_name, plate, phone, article, offence_date, "
    "issued_on, currency, full_minor, reduced_minor, discount_deadline, surcharge_minor, due_minor, paid_minor, "
    "paid_on, paid_ref, state, state_since, anchors, pauses, error"
)
STATE = COLUMNS.split(", ").index("state")
SELECT_DUE = f"SELECT {COLUMNS} FROM fine WHERE next_on <= %s ORDER BY next_on, id LIMIT %s FOR UPDATE"


def baseline(url: str, day: date) -> int:
    """The bare SQL pass: select the due rows and write their state back, in batches."""
    import psycopg

    rows = 0
    with psycopg.connect(psycopg_url(url)) as conn:
        while True:
            with conn.transaction():
                got = conn.execute(SELECT_DUE, (day, BATCH)).fetchall()
                if not got:
                    break
                conn.execute(
                    "UPDATE fine SET state = v.state, next_on = NULL, updated_at = now() "
                    "FROM unnest(%b::bigint[], %b::varchar[]) AS v(id, state) WHERE fine.id = v.id",
                    ([r[0] for r in got], [r[STATE] for r in got]),
                )
            rows += len(got)
    return rows


def daily_run(url: str, day: date) -> int:
    from core.sync.signing import Signer
    from server.db.base import make_engine, make_sessionmaker
    from server.fines.daily_run import FineWork, RunSettings, run_daily
    from server.fines.notifier import send_due
    from server.fines.sms_gateway import LogGateway

    sessions = make_sessionmaker(make_engine(url))
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(hours=3)
    now = lambda: at  # noqa: E731 - a fixed clock: the run's day
    report = run_daily(sessions, day, FineWork(Signer.generate()), now, RunSettings(batch=BATCH))
    with tempfile.TemporaryDirectory() as tmp:
        sent = send_due(sessions, LogGateway(Path(tmp) / "sms.log"), now)
    print(f"  run: {report.fines} fines, {report.happenings} steps, {report.errors} errors, {sent.sent} SMS, "
          f"batches {report.batches}", file=sys.stderr)  # fmt: skip
    return report.fines


def warm(url: str) -> None:
    """Read the fresh copy's table and indexes once, so that neither side pays for the cold copy."""
    import psycopg

    with psycopg.connect(psycopg_url(url)) as conn:
        conn.execute("SELECT count(*), sum(length(anchors)) FROM fine").fetchall()
        conn.execute("SELECT count(*) FROM fine WHERE next_on <= %s", (RUN_DAY,)).fetchall()


def child(mode: str, url: str) -> None:
    import server.fines.daily_run
    import server.fines.notifier  # noqa: F401

    warm(url)
    t0 = time.perf_counter()
    rows = baseline(url, RUN_DAY) if mode == "baseline" else daily_run(url, RUN_DAY)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak}))


def in_child(mode: str, url: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, url],
        capture_output=True,
        text=True,
        check=False,
        timeout=7200,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    server = os.environ.get("PATROLKIT_BENCH_DB_URL") or os.environ.get("PATROLKIT_TEST_DB_URL") or ""
    if not server.startswith("postgresql"):
        print("bench/fines_daily.py wants PostgreSQL: set PATROLKIT_BENCH_DB_URL=postgresql+psycopg://…")
        raise SystemExit(2)
    with pg_database(server) as template:
        t0 = time.perf_counter()
        mix = load_fines(template, FINES)
        print(f"loaded {FINES} open fines in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1])))  # fmt: skip
        name = make_url(template).database
        bases, runs = [], []
        for r in range(ROUNDS):
            with pg_database(server, name) as url:
                bases.append(in_child("baseline", url))
            with pg_database(server, name) as url:
                runs.append(in_child("run", url))
            print(f"round {r + 1}: baseline {bases[-1]['seconds']:.2f} s ({int(bases[-1]['rows'])} rows), "
                  f"daily run {runs[-1]['seconds']:.2f} s ({int(runs[-1]['rows'])} fines), "
                  f"peak {runs[-1]['peak_mb']:.0f} MB")  # fmt: skip
    base = min(b["seconds"] for b in bases)
    value = min(x["seconds"] for x in runs)
    peak = max(x["peak_mb"] for x in runs)
    ratio = value / base
    print(
        json.dumps(
            {
                "bench": "fines_daily",
                "value": round(value, 2),
                "unit": "s",
                "baseline": round(base, 2),
                "ratio": round(ratio, 2),
                "target": f"ratio <= {TARGET_RATIO} and peak memory < {TARGET_MB} MB (peak {peak:.0f} MB)",
                "pass": ratio <= TARGET_RATIO and peak < TARGET_MB,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
