"""Which lifecycle rules run a fine: the packaged rules of its jurisdiction when it is issued, snapshotted in
``fine_rules`` by label (``lifecycle-kz@1``) with their exact text, and afterwards always that snapshot.

A packaged file whose version is already stored with different text is refused (``DatasetError``): a rule
change must come with a new version, so that fines issued under the old one keep running by it. Parsed rules
and holiday calendars are kept in memory per process (they never change under a label).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.fines import DatasetError, HolidayCalendar, UnknownJurisdiction, load_holiday_calendar
from core.fines.datasets import check_lifecycle, lifecycle_text, parse_lifecycle
from core.fines.lifecycle_rules import LifecycleRules
from server.db.fines import FineRules

_lock = threading.Lock()
_parsed: dict[str, tuple[str, LifecycleRules]] = {}  # label -> (sha256, rules)
_calendars: dict[str, HolidayCalendar] = {}
_current: dict[tuple[str, str], str] = {}  # (database URL, jurisdiction) -> label checked there


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse(label: str, text: str, jurisdiction: str) -> LifecycleRules:
    digest = _sha(text)
    with _lock:
        cached = _parsed.get(label)
    if cached is not None and cached[0] == digest:
        return cached[1]
    source = f"{jurisdiction.lower()}_lifecycle.toml ({label})"
    rules = parse_lifecycle(text, source)
    check_lifecycle(rules, jurisdiction, source)
    if rules.label != label:
        raise DatasetError(f"{source}: stored as {label} but the text says {rules.label}")
    with _lock:
        _parsed[label] = (digest, rules)
    return rules


def current_rules(session: Session, jurisdiction: str, now: datetime) -> LifecycleRules:
    """The packaged rules of ``jurisdiction``, snapshotted in ``fine_rules`` if they are not yet."""
    key = (str(session.get_bind().engine.url), jurisdiction)
    with _lock:
        label = _current.get(key)
        cached = _parsed.get(label) if label else None
    if cached is not None:
        return cached[1]
    text = lifecycle_text(jurisdiction)
    rules = parse_lifecycle(text, f"{jurisdiction.lower()}_lifecycle.toml")
    check_lifecycle(rules, jurisdiction, f"{jurisdiction.lower()}_lifecycle.toml")
    digest = _sha(text)
    stored = session.execute(select(FineRules.sha256).where(FineRules.label == rules.label)).scalar()
    committed = stored is not None  # remembered only once seen stored (an insert here may yet roll back)
    if stored is None:
        row = {
            "label": rules.label,
            "jurisdiction": rules.jurisdiction,
            "sha256": digest,
            "content": text,
            "stored_at": now,
        }
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(FineRules).values(row).on_conflict_do_nothing())
        stored = session.execute(select(FineRules.sha256).where(FineRules.label == rules.label)).scalar()
    if stored != digest:
        raise DatasetError(
            f"{jurisdiction.lower()}_lifecycle.toml: {rules.label} is stored with other rules; "
            "a changed rules file needs a new version"
        )
    parsed = _parse(rules.label, text, rules.jurisdiction)
    if committed:
        with _lock:
            _current[key] = rules.label
    return parsed


def rules_by_label(session: Session, label: str) -> LifecycleRules:
    """The snapshot a fine was issued under; ``LookupError`` if it was never stored."""
    with _lock:
        cached = _parsed.get(label)
    if cached is not None:
        return cached[1]
    row = session.execute(
        select(FineRules.content, FineRules.jurisdiction).where(FineRules.label == label)
    ).first()
    if row is None:
        raise LookupError(f"no rules snapshot {label!r}")
    return _parse(label, row[0], row[1])


def calendar_for(jurisdiction: str) -> HolidayCalendar:
    """The jurisdiction's holiday calendar; weekends only where none is shipped (rules that count working
    days there are refused at load)."""
    with _lock:
        found = _calendars.get(jurisdiction)
    if found is None:
        try:
            found = load_holiday_calendar(jurisdiction)
        except UnknownJurisdiction:
            found = HolidayCalendar.weekends_only()
        with _lock:
            _calendars[jurisdiction] = found
    return found


def local_day(rules: LifecycleRules, at: datetime) -> date:
    """The calendar day of the jurisdiction at instant ``at``."""
    return at.astimezone(ZoneInfo(rules.timezone)).date()
