"""Shared by the fine benchmarks: PostgreSQL databases of their own (cloned from a template), and a million
open fines in a realistic mix of states.

The mix: fines issued every day of the last 180 (KZ, 85 %) or 400 (GE, 15 %) days before the run day, over
six articles, each taken through the real lifecycle engine up to the day before the run (so their states,
anchors and next steps are the ones the rules give: KZ discount window, due, demand sent, handed over; GE
discount window, notice sent, not delivered, published, deemed delivered, due, surcharged, enforcement),
with postal outcomes for GE (70 % delivered, 20 % undelivered, 10 % never answered), 1 % under an open or
closed appeal, phones on 80 % of them (a further 10 % in the contact table). Fewer fines stay open at each
later stage (``_still_open``: most are paid in the discount window); paid and closed fines are not loaded:
they cost the run nothing. Rows go in by binary COPY.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import make_url

from core.fines import HolidayCalendar, load_holiday_calendar, load_jurisdiction, reduced_fine
from core.fines.datasets import lifecycle_text, load_lifecycle
from core.fines.fine_state import TERMINAL
from core.fines.lifecycle_engine import advance, close_appeal, new_fine, next_on, open_appeal, record_delivery
from core.iin import check_digit
from server.fines.fine_record import lifecycle_columns

RUN_DAY = date(2026, 9, 15)
KZ_ARTICLES = ("591.1", "592.1", "592.2", "592.3", "599.1", "600.1")
GE_ARTICLES = ("phone", "pedestrian", "solid-line", "speed-40")


def admin_dsn(url: str) -> str:
    base = make_url(url)
    dsn = (
        f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} "
        f"dbname={base.database or 'postgres'}"
    )
    return dsn + (f" password={base.password}" if base.password else "")


@contextmanager
def pg_database(server_url: str, template: str | None = None) -> Iterator[str]:
    """A database of this run only (a copy of ``template`` if given), dropped afterwards; yields its URL."""
    name = f"pk_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn(server_url), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def psycopg_url(url: str) -> str:
    """The SQLAlchemy URL as a libpq URI psycopg can connect with."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def iins(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct valid IINs of people born 1960-1999."""
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < n:
        born = date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
        first = f"{born:%y%m%d}{rng.choice('34')}{rng.randrange(10000):04d}"
        digit = check_digit(first)
        if digit is not None:
            found.add(first + str(digit))
    return sorted(found)


def _lived(rules: Any, cal: HolidayCalendar, issued: date, rf: Any, variant: str, until: date) -> Any:
    """A fine issued on ``issued`` taken through the rules up to ``until``, jumping from one due day to the
    next, with the post answering 7 days after each notice as ``variant`` says and appeals as it says."""
    facts, _ = new_fine(issued, rf.deadline, rf.full.minor, rf.due.minor)
    events: dict[date, str] = {}
    if variant == "appeal_open":
        events[issued + timedelta(days=1)] = "open"
    if variant == "appeal_closed":
        events[issued + timedelta(days=1)] = "open"
        events[issued + timedelta(days=4)] = "reject"
    t = issued
    while True:
        todo = events.pop(t, None)
        if todo == "open":
            facts = open_appeal(facts, t)[0]
        elif todo == "reject":
            facts = close_appeal(facts, t, False)[0]
        elif todo in ("notice1", "notice2"):
            with contextlib.suppress(Exception):  # an outcome that no longer fits is refused, as by the API
                facts = record_delivery(rules, facts, todo, variant == "delivered", t)[0]
        out = advance(rules, facts, t, cal)
        facts = out.facts
        for notice in ("notice1", "notice2"):
            sent = facts.anchors.get(notice)
            answer = sent + timedelta(days=7) if sent else None
            done = f"{notice}.delivered" in facts.anchors or f"{notice}.undelivered" in facts.anchors
            if answer and answer > t and not done and variant in ("delivered", "undelivered"):
                events.setdefault(answer, notice)
        later = [d for d in (out.next_on, *events) if d is not None and d > t]
        if not later or min(later) > until:
            return facts
        t = min(later)


def _still_open(state: str) -> float:
    """How many of the fines issued on one day are still unpaid at that stage (assumed: 55 % pay the reduced
    amount in the window, a further fifth before the demand or surcharge)."""
    if state in ("discount_window", "issued"):
        return 1.0
    if state in ("due", "notice_sent", "notice_not_delivered", "published", "deemed_delivered"):
        return 0.45
    return 0.35


def _templates(day: date) -> list[dict[str, Any]]:
    """One template per (jurisdiction, article, issue day, variant): the fine's columns as of ``day``."""
    out: list[dict[str, Any]] = []
    kz_cal, none = load_holiday_calendar("kz"), HolidayCalendar.weekends_only()
    for code, articles, days, cal in (("KZ", KZ_ARTICLES, 180, kz_cal), ("GE", GE_ARTICLES, 400, none)):
        jur, rules = load_jurisdiction(code), load_lifecycle(code)
        variants = ("delivered", "undelivered", "silent") if code == "GE" else ("plain",)
        for article in articles:
            for back in range(1, days + 1):
                issued = day - timedelta(days=back)
                rf = reduced_fine(jur, article, issued, issued, cal)
                for variant in (*variants, "appeal_open", "appeal_closed"):
                    facts = _lived(rules, cal, issued, rf, variant, day - timedelta(days=1))
                    if facts.state in TERMINAL:
                        continue
                    columns = lifecycle_columns(
                        facts, rules, day - timedelta(days=1), next_on(rules, facts, cal)
                    )
                    out.append(
                        {
                            "jurisdiction": code, "rules": rules.label, "tariff": jur.label, "article": article,
                            "offence_date": issued, "issued_on": issued, "currency": jur.currency_code,
                            "full_minor": rf.full.minor, "reduced_minor": rf.due.minor,
                            "discount_deadline": rf.deadline, "paid_minor": 0, "paid_ref": "",
                            "state_since": issued, "variant": variant, **columns,
                        }
                    )  # fmt: skip
    return out


COLUMNS = (
    "number", "source", "jurisdiction", "rules", "tariff", "person_id", "person_name", "plate", "phone", "article",
    "offence_date", "issued_on", "currency", "full_minor", "reduced_minor", "discount_deadline", "surcharge_minor",
    "due_minor", "paid_minor", "paid_on", "paid_ref", "state", "state_since", "unpaid", "appealed", "anchors",
    "pauses", "next_on", "error", "created_at", "updated_at",
)  # fmt: skip
TYPES = (
    "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar", "varchar",
    "date", "date", "varchar", "int8", "int8", "date", "int8", "int8", "int8", "date", "varchar", "varchar", "date",
    "bool", "bool", "text", "text", "date", "text", "timestamptz", "timestamptz",
)  # fmt: skip


def load_fines(url: str, n: int, day: date = RUN_DAY, seed: int = 15) -> dict[str, int]:
    """Migrate the database at ``url`` and load ``n`` open fines as of the day before ``day``; returns the mix."""
    from server.db.migrate import upgrade

    upgrade(url)
    rng = random.Random(seed)
    templates = _templates(day)
    kz = [t for t in templates if t["jurisdiction"] == "KZ"]
    ge = [t for t in templates if t["jurisdiction"] == "GE"]
    weights_kz = [(98 if t["variant"] == "plain" else 1) * _still_open(t["state"]) for t in kz]
    weights_ge = [
        {"delivered": 69, "undelivered": 20, "silent": 9}.get(t["variant"], 1) * _still_open(t["state"])
        for t in ge
    ]
    people = iins(max(1, int(n * 0.7)))
    now = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    mix: dict[str, int] = {}
    dsn = psycopg_url(url)
    contacts: list[tuple[str, str]] = []
    with psycopg.connect(dsn) as conn:
        for label in {t["rules"] for t in templates}:
            code = label.split("-")[1].split("@")[0]
            conn.execute(
                "INSERT INTO fine_rules (label, jurisdiction, sha256, content, stored_at) VALUES (%s, %s, %s, %s, %s)",
                (label, code.upper(), hashlib.sha256(lifecycle_text(code).encode()).hexdigest(),
                 lifecycle_text(code), now),
            )  # fmt: skip
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY fine ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(list(TYPES))
            picks_kz = rng.choices(kz, weights_kz, k=int(n * 0.85))
            picks_ge = rng.choices(ge, weights_ge, k=n - len(picks_kz))
            for i, t in enumerate(picks_kz + picks_ge):
                person = (
                    people[rng.randrange(len(people))]
                    if t["jurisdiction"] == "KZ"
                    else f"{rng.randrange(10**11):011d}"
                )
                roll = rng.random()
                phone = f"+7701{rng.randrange(10**7):07d}" if roll < 0.8 else None
                if 0.8 <= roll < 0.9:
                    contacts.append((person, f"+7702{rng.randrange(10**7):07d}"))
                mix[t["state"]] = mix.get(t["state"], 0) + 1
                copy.write_row((
                    f"B{i:07d}", "protocol" if t["jurisdiction"] == "KZ" else "camera", t["jurisdiction"], t["rules"],
                    t["tariff"], person, "Bench Person", f"{i % 1000:03d}ABC01", phone, t["article"],
                    t["offence_date"], t["issued_on"], t["currency"], t["full_minor"], t["reduced_minor"],
                    t["discount_deadline"], t["surcharge_minor"], t["due_minor"], 0, t["paid_on"], "", t["state"],
                    t["state_since"], t["unpaid"], t["appealed"], t["anchors"], t["pauses"], t["next_on"], "", now, now,
                ))  # fmt: skip
        with (
            conn.cursor() as cur,
            cur.copy("COPY contact_phone (person_id, phone, source, updated_at) FROM STDIN") as copy,
        ):
            for person, phone in dict(contacts).items():
                copy.write_row((person, phone, "bench", now))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return mix
