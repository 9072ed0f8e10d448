"""The daily run (``patrol-server fines run [--date D]``): take every fine's steps that are due on day D.

Named steps, in order:

1. **lock**: the database run lock (``run_lock``); a second run at the same time stops with ``RunBusy``.
   Runs recorded as still running are then known to have been cut off, and marked so.
2. **sweep**: fines for protocols the ingest hook missed (``issuing.sweep_protocols``).
3. **unmatched payments**: provider payments for numbers that named no fine are applied if the fine exists
   now; those still unmatched after ``unmatched_refund_days`` get a refund case.
4. **advance**: in batches, the fines whose ``next_on`` is on or before D, locked for update: the pure engine
   takes their steps, and each batch commits its fines' new state together with their history, notices and
   documents (``step_effects``). A fine's ``next_on`` always moves past D, so a batch never comes twice and a
   run cut off anywhere leaves only whole batches behind: run again, it does the rest and nothing twice.
5. **hand over**: the enforcement and recall documents not yet in a batch go out in one batch per
   jurisdiction (``enforcement``).

Sending the SMS the run recorded is the notifier's job (``notifier.send_due``), which the command line calls
after the run and ``patrol-server run`` keeps calling. Nothing here reads the clock except through ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core.fines import FineError
from core.fines.lifecycle_engine import Advance, HappeningKind, advance
from core.fines.lifecycle_rules import Action, LifecycleRules
from core.structured_log import log_event
from core.sync.signing import Signer
from server.db.base import transaction
from server.db.fines import Fine, FineRun
from server.fines import enforcement, issuing, payments
from server.fines.contacts import ContactRegistry, ImportedContacts
from server.fines.fine_record import FineRow, facts_of, lifecycle_columns, rows_of, select_rows
from server.fines.rules_book import calendar_for, current_rules, local_day, rules_by_label
from server.fines.run_lock import RunLock, holder_name, run_lock
from server.fines.step_effects import Changes, ClassWrite, record, write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineWork:
    """What the lifecycle needs around the database: the signing key of documents and the contact registry."""

    signer: Signer
    contacts: ContactRegistry = field(default_factory=ImportedContacts)


@dataclass(frozen=True)
class RunSettings:
    batch: int = 2000
    unmatched_refund_days: int = 7


@dataclass
class RunReport:
    day: date
    fines: int = 0
    happenings: int = 0
    errors: int = 0
    swept: int = 0
    batches: list[int] = field(default_factory=list)
    refunds: int = 0


def claim_writes(session: Session) -> None:
    """On SQLite, take the database's write lock now, before reading what will be written (WAL lets a reader
    go stale while another commits; its later write would fail). PostgreSQL locks rows ``FOR UPDATE``."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE fine_run_lease SET pid = pid WHERE 1 = 0"))


@dataclass(frozen=True, slots=True)
class _Moved:
    row: FineRow
    rules: LifecycleRules
    out: Advance
    columns: dict[str, Any]


MemoKey = tuple[str, str, str, str, int, int, int]
# what steps can change (pauses, the appealed mark and payments are events: they never change in a run)
_STEP_COLUMNS = ("state", "anchors", "surcharge_minor", "unpaid", "due_minor", "next_on")
Memo = dict[MemoKey, "tuple[Advance, dict[str, Any]] | str"]


def _advance_one(
    session: Session, row: FineRow, day: date, memo: Memo
) -> tuple[Advance, dict[str, Any]] | str:
    """The engine's answer for ``row`` on ``day`` and the columns it gives, or the error. The engine is pure:
    fines with the same rules, state, anchors, pauses and amounts get the same answer, computed once a run."""
    key = (
        row.rules,
        row.state,
        row.anchors,
        row.pauses,
        row.full_minor,
        row.reduced_minor,
        row.surcharge_minor,
    )
    found = memo.get(key)
    if found is not None:
        return found
    rules = rules_by_label(session, row.rules)
    try:
        out = advance(rules, facts_of(row), day, calendar_for(row.jurisdiction))
        columns = lifecycle_columns(out.facts, rules, day, out.next_on)
        answer: tuple[Advance, dict[str, Any]] | str = (out, columns)
        if out.next_on is not None and out.next_on <= day:
            answer = f"next step on {out.next_on} is not after {day}"
    except FineError as exc:
        answer = str(exc)
    memo[key] = answer
    return answer


def advance_rows(
    session: Session,
    rows: Sequence[FineRow],
    day: date,
    work: FineWork,
    now: datetime,
    memo: Memo | None = None,
) -> Changes:
    """Take the due steps of ``rows`` (locked by the caller) and write what follows, in the caller's transaction."""
    memo = {} if memo is None else memo
    changes = Changes()
    moved: list[_Moved] = []
    for row in rows:
        answer = _advance_one(session, row, day, memo)
        if isinstance(answer, str):
            _failed(changes, row, day, answer, now)
        else:
            moved.append(_Moved(row, rules_by_label(session, row.rules), answer[0], answer[1]))
    needs_phone = {
        m.row.person_id
        for m in moved
        if not m.row.phone and any(Action.SMS in h.actions for h in m.out.happenings)
    }
    phones = work.contacts.phones(session, needs_phone) if needs_phone else {}
    classes: dict[int, tuple[_Moved, list[int]]] = {}
    for m in moved:
        found = classes.setdefault(id(m.out), (m, []))
        found[1].append(m.row.id)
        if any(h.actions or h.kind is not HappeningKind.STEP for h in m.out.happenings):
            record(
                changes,
                m.row,
                m.rules,
                m.out.happenings,
                m.out.facts,
                phones,
                work.signer,
                now,
                with_history=False,
            )
    changes.classes.extend(
        ClassWrite(ids, {k: m.columns[k] for k in _STEP_COLUMNS}, m.out.happenings)
        for m, ids in classes.values()
    )
    write(session, changes, day, now)
    return changes


def _failed(changes: Changes, row: FineRow, day: date, error: str, now: datetime) -> None:
    """A fine the rules cannot move: kept as it is, the error shown on it, tried again tomorrow."""
    changes.fines.append(
        {"id": row.id, "error": error[:2000], "next_on": day + timedelta(days=1), "updated_at": now}
    )
    changes.events.append(
        {"fine_id": row.id, "at": now, "happened_on": day, "kind": "error", "step": None,
         "from_state": row.state, "to_state": row.state, "detail": error[:2000]}
    )  # fmt: skip
    log_event(log, "fines.step_failed", fine=row.number, error=error[:300])


_DUE_SQL = f"SELECT {', '.join(FineRow.__slots__)} FROM fine WHERE next_on <= %s ORDER BY next_on, id LIMIT %s FOR UPDATE"


def due_rows(session: Session, day: date, limit: int) -> list[FineRow]:
    """Up to ``limit`` fines due on or before ``day``, oldest first, locked until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":  # plain tuples straight from psycopg
        driver = session.connection().connection.driver_connection
        with driver.cursor() as cur:  # type: ignore[union-attr]
            return [FineRow(*r) for r in cur.execute(_DUE_SQL, (day, limit))]
    claim_writes(session)
    query = select_rows().where(Fine.next_on <= day).order_by(Fine.next_on, Fine.id).limit(limit)
    return rows_of(session.execute(query).all())


def advance_fines(session: Session, ids: Sequence[int], day: date, work: FineWork, now: datetime) -> Changes:
    """Take the due steps of the given fines now (e.g. the SMS of a fine just imported)."""
    query = select_rows().where(Fine.id.in_(list(ids)), Fine.next_on <= day)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    else:
        claim_writes(session)
    return advance_rows(session, rows_of(session.execute(query).all()), day, work, now)


def import_and_start(
    session: Session, items: Sequence[issuing.FineImport], work: FineWork, now: datetime
) -> list[issuing.ImportResult]:
    """Import fines and take the steps due at once (e.g. Georgia's SMS on detection), in the caller's
    transaction; the day is each jurisdiction's local date."""
    results = issuing.import_fines(session, now, items)
    jurisdiction_of = {f.number: f.jurisdiction for f in items}
    created: dict[str, list[int]] = {}
    for r in results:
        if r.outcome == "created" and r.fine_id is not None:
            created.setdefault(jurisdiction_of[r.number], []).append(r.fine_id)
    for jurisdiction, ids in sorted(created.items()):
        advance_fines(session, ids, local_day(current_rules(session, jurisdiction, now), now), work, now)
    return results


def run_daily(
    sessions: sessionmaker[Session],
    day: date,
    work: FineWork,
    now: Callable[[], datetime],
    settings: RunSettings = RunSettings(),
    on_batch: Callable[[int], None] | None = None,
) -> RunReport:
    """One daily run for ``day`` (see the module docstring); ``on_batch`` is told each batch's size."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    report = RunReport(day)
    with run_lock(engine, now) as lock:
        with transaction(sessions) as session:
            # runs still "running" while we hold the lock were cut off (killed, power lost): say so
            session.execute(
                update(FineRun).where(FineRun.status == "running").values(status="cut_off", finished_at=now())
            )
            run = FineRun(run_on=day, started_at=now(), status="running", holder=holder_name())
            session.add(run)
            session.flush()
            run_id = run.id
        log_event(log, "fines.run.started", day=day.isoformat(), run=run_id)
        try:
            _sweep(sessions, now, report)
            with transaction(sessions) as session:
                report.refunds = payments.refund_unmatched(
                    session, day, settings.unmatched_refund_days, now()
                )
            _advance_all(sessions, day, work, now, settings, lock, report, on_batch)
            with transaction(sessions) as session:
                report.batches = enforcement.batch_documents(session, day, now())
        except BaseException:
            with transaction(sessions) as session:
                session.execute(
                    update(FineRun).where(FineRun.id == run_id).values(status="failed", finished_at=now())
                )
            raise
        with transaction(sessions) as session:
            session.execute(
                update(FineRun)
                .where(FineRun.id == run_id)
                .values(status="done", finished_at=now(), fines=report.fines, happenings=report.happenings,
                        errors=report.errors)
            )  # fmt: skip
    log_event(
        log, "fines.run.done", day=day.isoformat(), fines=report.fines, happenings=report.happenings,
        errors=report.errors, swept=report.swept, batches=report.batches, refunds=report.refunds,
    )  # fmt: skip
    return report


def _sweep(sessions: sessionmaker[Session], now: Callable[[], datetime], report: RunReport) -> None:
    after: str | None = ""
    while after is not None:
        with transaction(sessions) as session:
            counts, after = issuing.sweep_protocols(session, now(), after)
        report.swept += counts.created


def _advance_all(
    sessions: sessionmaker[Session],
    day: date,
    work: FineWork,
    now: Callable[[], datetime],
    settings: RunSettings,
    lock: RunLock,
    report: RunReport,
    on_batch: Callable[[int], None] | None,
) -> None:
    memo: Memo = {}
    while True:
        with transaction(sessions) as session:
            rows = due_rows(session, day, settings.batch)
            if not rows:
                return
            changes = advance_rows(session, rows, day, work, now(), memo)
        report.fines += len(rows)
        report.happenings += changes.happenings
        report.errors += changes.errors
        lock.renew()
        if on_batch is not None:
            on_batch(len(rows))


def last_run(session: Session) -> FineRun | None:
    return session.scalars(select(FineRun).order_by(FineRun.id.desc()).limit(1)).first()
