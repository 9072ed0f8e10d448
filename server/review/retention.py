"""Footage retention by category, and the deletion run.

Categories (``Category``), the longest wins:

- ``paid_stop``: footage of a stop with a payment (on the spot, or a provider's payment applied to its fine);
- ``case``: footage of a stop with a complaint or appeal case;
- ``export``: footage that went into an evidence package;
- ``no_event``: anything else.

Which footage an event links is found as the workspace finds a stop's footage (``server.review.footage.
stop_window``: per device, the bookmarks' stretch or the time around the offence), and kept as a
``footage_link`` row: a device and a time range, so footage uploaded after the event is linked too. Linked
footage is kept the category's years from the latest time the event touched it (the payment, the case's last
change, the export), and never less than ``no_event_days``; footage with no event ``no_event_days`` after it
was recorded. A case's legal hold (``server.review.cases.place_hold``) keeps every segment it overlaps until
released, whatever the deadline.

``run_retention`` is the daily run, in three steps, each idempotent:

1. ``link_events``: link the footage of every event since the last finished run (all events on the first);
2. ``classify``: give each stored segment not yet judged, or touched by a new link, its category and
   ``retain_until``; when the rules differ from those of the last finished run (``Rules.text``, kept on each
   run), every stored segment is judged again, so that a shorter period applies to footage already judged
   (the store's Object Lock still keeps what it locked longer: such footage is kept and reported);
3. ``follow_locks`` (``server.review.object_locks``): where the store has Object Lock, extend the lock of
   footage kept longer than it (never shorten one), turn the object legal hold ON where a case's legal hold
   covers a segment and OFF where none does any more, and extend the locks of case files; a store that is
   down leaves this to the next run;
4. ``delete_due``: for each stored segment whose ``retain_until`` has passed, judge again from its links and
   holds as they are now, and only if it is still due: delete its object from the store and turn its row into
   a tombstone (state ``deleted``, when and why), with one ``footage.delete`` row in the access audit.

A run that stops part-way leaves nothing inconsistent: a deleted object whose row was not yet marked is found
due again, its delete answers "already gone", and its row is marked then. ``--dry-run`` does all the judging
in one transaction that is rolled back.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.structured_log import log_event
from server.config import RetentionSection
from server.db.cases import Case
from server.db.fine_payments import ProviderPayment
from server.db.fines import Fine
from server.db.protocols import Payment, Protocol
from server.db.retention import FootageHold, FootageLink, RetentionRun
from server.db.supervisors import AccessAudit
from server.db.sync import Bookmark
from server.db.video import VideoSegment
from server.review import audit
from server.review.audit import Operator
from server.review.footage import Interval, stop_window
from server.review.object_locks import LockReport, follow_locks
from server.video.storage import ObjectLocked, VideoStore

log = logging.getLogger(__name__)
RUN_OPERATOR = Operator("retention", session_ref="retention")
LOOKBACK_MARGIN = timedelta(days=1)  # events are looked at from this long before the last finished run began


class Category(enum.StrEnum):
    PAID_STOP = "paid_stop"
    CASE = "case"
    EXPORT = "export"
    NO_EVENT = "no_event"


CATEGORY_WORDS = {
    Category.PAID_STOP: "остановка с оплатой / stop with a payment",
    Category.CASE: "жалоба или обжалование / complaint or appeal",
    Category.EXPORT: "выгружено / exported",
    Category.NO_EVENT: "без события / no event",
}
UNCLASSIFIED_WORDS = "ещё не оценено / not judged yet (since the last run)"


@dataclass(frozen=True)
class Rules:
    """How long each category is kept (from ``RetentionSection``)."""

    no_event: timedelta
    years: Mapping[Category, int]

    def text(self) -> str:
        """The rules in one line, as a run keeps them: a run under other rules judges everything again."""
        return f"no_event={self.no_event.days}d " + " ".join(
            f"{c.value}={self.years[c]}y" for c in (Category.PAID_STOP, Category.CASE, Category.EXPORT)
        )

    @classmethod
    def of(cls, section: RetentionSection) -> Rules:
        return cls(
            timedelta(days=section.no_event_days),
            {Category.PAID_STOP: section.paid_stop_years, Category.CASE: section.case_years,
             Category.EXPORT: section.export_years},
        )  # fmt: skip


def add_years(at: datetime, years: int) -> datetime:
    """The same moment ``years`` later (29 February becomes 28 February in a year without it)."""
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, day=28)


@dataclass(frozen=True)
class Judgement:
    category: Category
    retain_until: datetime


def judge(rules: Rules, ended_at: datetime, links: Iterable[tuple[str, datetime]]) -> Judgement:
    """A segment's category and deadline from its links (category, latest time): the link kept longest
    gives the category; the deadline is never earlier than ``no_event`` after the footage ended."""
    best = Judgement(Category.NO_EVENT, ended_at + rules.no_event)
    linked: Judgement | None = None
    for name, at in links:
        category = Category(name)
        until = add_years(max(at, ended_at), rules.years[category])
        if linked is None or until > linked.retain_until:
            linked = Judgement(category, until)
    if linked is None:
        return best
    return Judgement(linked.category, max(linked.retain_until, best.retain_until))


# --- 1. links --------------------------------------------------------------------------------------------


def upsert_link(session: Session, category: Category, source: str, device_id: str, iv: Interval, at: datetime,
                now: datetime) -> FootageLink | None:  # fmt: skip
    """Link a stretch of footage to an event; an existing link keeps its latest ``at``. Returns the link
    when it is new or its ``at`` moved (the segments it covers need judging again), else None."""
    found = session.scalar(select(FootageLink).where(
        FootageLink.source == source[:80], FootageLink.device_id == device_id,
        FootageLink.started_at == iv.start, FootageLink.ended_at == iv.end))  # fmt: skip
    if found is None:
        link = FootageLink(category=category.value, source=source[:80], device_id=device_id, started_at=iv.start,
                           ended_at=iv.end, at=at, made_at=now)  # fmt: skip
        session.add(link)
        session.flush()
        return link
    if at > found.at:
        found.at = at
        return found
    return None


def link_protocol(session: Session, number: str, category: Category, source: str, at: datetime,
                  now: datetime) -> list[FootageLink]:  # fmt: skip
    """Link the footage of one stop (its windows, as its page shows them)."""
    protocol = session.get(Protocol, number)
    if protocol is None:
        return []
    bookmarks = list(session.scalars(select(Bookmark).where(Bookmark.protocol_number == number)))
    out = []
    for device_id, iv, _ in stop_window(protocol, bookmarks):
        link = upsert_link(session, category, source, device_id, iv, at, now)
        if link is not None:
            out.append(link)
    return out


def link_events(session: Session, since: datetime | None, now: datetime) -> list[FootageLink]:
    """Link the footage of every event since ``since`` (all when None): payments at the stop, provider
    payments applied to a stop's fine, cases (any change), exports of a stop. Returns the links made or moved."""
    def after(column: InstrumentedAttribute[datetime]) -> list[ColumnElement[bool]]:
        return [] if since is None else [column >= since]

    made: list[FootageLink] = []
    for number, at in session.execute(select(Payment.protocol_number, Payment.approved_at).where(*after(Payment.received_at))):
        made += link_protocol(session, number, Category.PAID_STOP, f"payment:{number}", at, now)
    provider = (
        select(Fine.number, func.max(ProviderPayment.received_at))
        .join(Fine, Fine.id == ProviderPayment.fine_id)
        .where(ProviderPayment.outcome == "applied", *after(ProviderPayment.received_at))
        .group_by(Fine.number)
    )
    for number, at in session.execute(provider):
        made += link_protocol(session, number, Category.PAID_STOP, f"payment:{number}", at, now)
    for case_id, number, updated_at in session.execute(select(Case.id, Case.protocol_number, Case.updated_at).where(*after(Case.updated_at))):
        made += link_protocol(session, number, Category.CASE, f"case:{case_id}", updated_at, now)
    exports = (
        select(AccessAudit.protocol_number, func.max(AccessAudit.at))
        .where(AccessAudit.action == "evidence.export", AccessAudit.protocol_number.is_not(None), *after(AccessAudit.at))
        .group_by(AccessAudit.protocol_number)
    )
    for number, at in session.execute(exports):
        made += link_protocol(session, number, Category.EXPORT, f"export:{number}", at, now)
    return made


def link_export(session: Session, windows: Sequence[tuple[str, Interval]], source: str, at: datetime) -> None:
    """An evidence package was made of these stretches: keep them as exported footage (the export's own
    transaction, so footage exported today is never deleted tonight)."""
    for device_id, iv in windows:
        upsert_link(session, Category.EXPORT, f"export:{source}", device_id, iv, at, at)


# --- 2. judging ------------------------------------------------------------------------------------------


def _overlapping(device_id: str, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [VideoSegment.device_id == device_id, VideoSegment.started_at < end, VideoSegment.ended_at > start]


def judge_rows(session: Session, rules: Rules, rows: Sequence[VideoSegment]) -> int:
    """Judge each row from its links as they are now; returns how many changed."""
    by_device: dict[str, list[VideoSegment]] = {}
    for row in rows:
        by_device.setdefault(row.device_id, []).append(row)
    changed = 0
    for device_id, mine in by_device.items():
        start, end = min(r.started_at for r in mine), max(r.ended_at for r in mine)
        links = list(session.execute(select(FootageLink.category, FootageLink.at, FootageLink.started_at, FootageLink.ended_at).where(
            FootageLink.device_id == device_id, FootageLink.started_at < end, FootageLink.ended_at > start)))  # fmt: skip
        for row in mine:
            verdict = judge(rules, row.ended_at, [(c, at) for c, at, s, e in links if s < row.ended_at and e > row.started_at])
            if row.retention_category != verdict.category.value or row.retain_until != verdict.retain_until:
                row.retention_category, row.retain_until = verdict.category.value, verdict.retain_until
                changed += 1
    return changed


def classify(session: Session, rules: Rules, touched: Sequence[FootageLink], batch: int,
             commit: Callable[[], None], everything: bool = False) -> int:  # fmt: skip
    """Judge the stored segments the ``touched`` links cover, then those never judged (every stored one when
    ``everything``: the rules changed); returns how many rows changed."""
    changed = 0
    for link in touched:
        rows = list(session.scalars(select(VideoSegment).where(
            VideoSegment.state == "stored", *_overlapping(link.device_id, link.started_at, link.ended_at))))  # fmt: skip
        changed += judge_rows(session, rules, rows)
    commit()
    after = 0
    which = [] if everything else [VideoSegment.retention_category.is_(None)]
    while True:
        rows = list(session.scalars(
            select(VideoSegment)
            .where(VideoSegment.state == "stored", *which, VideoSegment.id > after)
            .order_by(VideoSegment.id).limit(batch)
        ))  # fmt: skip
        if not rows:
            return changed
        changed += judge_rows(session, rules, rows)
        after = rows[-1].id
        commit()


# --- 3. deleting -----------------------------------------------------------------------------------------


def held(session: Session, row: VideoSegment) -> bool:
    """Whether a case's legal hold that is not released covers the segment."""
    return bool(session.scalar(select(exists().where(
        FootageHold.device_id == row.device_id, FootageHold.released_at.is_(None),
        FootageHold.started_at < row.ended_at, FootageHold.ended_at > row.started_at))))  # fmt: skip


@dataclass
class RunReport:
    now: datetime
    dry_run: bool
    links_made: int = 0
    classified: int = 0
    deleted: list[tuple[str, int, int]] = field(default_factory=list)  # device, seq, bytes
    held: list[tuple[str, int]] = field(default_factory=list)
    locked: list[tuple[str, int]] = field(default_factory=list)  # the store refused: its object lock runs longer
    kept_longer: int = 0  # due by their row, but a link found now keeps them
    locks: LockReport = field(default_factory=LockReport)  # what the store's Object Lock was made to follow
    rules_changed: str = ""  # "old -> new" when the rules differ from the last finished run's

    @property
    def deleted_bytes(self) -> int:
        return sum(size for _, _, size in self.deleted)

    def text(self) -> str:
        what = "would delete" if self.dry_run else "deleted"
        changed = f"rules changed ({self.rules_changed}): every stored segment judged again; " if self.rules_changed else ""
        return (f"{changed}retention run as of {self.now.isoformat()}: {self.links_made} link(s) made, {self.classified} "
                f"segment(s) judged, {what} {len(self.deleted)} segment(s) ({self.deleted_bytes} bytes), "
                f"{len(self.held)} kept by a legal hold, {len(self.locked)} kept by the store's object lock, "
                f"{self.kept_longer} kept by a new link; {self.locks.text()}")  # fmt: skip


def delete_due(session: Session, store: VideoStore, rules: Rules, now: datetime, clock: Callable[[], datetime],
               report: RunReport, batch: int, commit: Callable[[], None]) -> None:  # fmt: skip
    """Delete what is due as of ``now`` (see the module docstring), ``batch`` rows per transaction."""
    after = 0
    while True:
        rows = list(session.scalars(
            select(VideoSegment)
            .where(VideoSegment.state == "stored", VideoSegment.retain_until <= now, VideoSegment.id > after)
            .order_by(VideoSegment.id).limit(batch)
        ))  # fmt: skip
        if not rows:
            return
        after = rows[-1].id
        judge_rows(session, rules, rows)
        for row in rows:
            if row.retain_until is None or row.retain_until > now:
                report.kept_longer += 1
                continue
            if held(session, row):
                report.held.append((row.device_id, row.seq))
                continue
            if row.store_legal_hold:  # the store's legal hold is not OFF yet: it would refuse the delete
                report.locked.append((row.device_id, row.seq))
                continue
            if not report.dry_run:
                try:
                    store.delete(row.storage_key)
                except ObjectLocked:  # kept, and tried again by the next run
                    report.locked.append((row.device_id, row.seq))
                    log_event(log, "retention.object_locked", device_id=row.device_id, seq=row.seq)
                    continue
            report.deleted.append((row.device_id, row.seq, row.size))
            if report.dry_run:
                continue
            at = clock()
            words = CATEGORY_WORDS[Category(row.retention_category or Category.NO_EVENT.value)]
            row.state, row.deleted_at = "deleted", at
            row.deleted_reason = f"retention: {row.retention_category}, kept until {row.retain_until.isoformat()}"[:200]
            audit.record(session, RUN_OPERATOR, "footage.delete", at, device_id=row.device_id, seq=row.seq,
                         detail=f"удалено по сроку хранения / deleted by retention: {words}, kept until "
                                f"{row.retain_until.isoformat()}; {row.size} B, sha256 {row.sha256}")  # fmt: skip
        commit()


def last_finished(session: Session) -> RetentionRun | None:
    return session.scalar(
        select(RetentionRun).where(RetentionRun.finished_at.is_not(None), RetentionRun.dry_run.is_(False))
        .order_by(RetentionRun.started_at.desc()).limit(1)
    )  # fmt: skip


def run_retention(session: Session, store: VideoStore, section: RetentionSection, now: datetime,
                  clock: Callable[[], datetime], dry_run: bool = False, run_by: str = "retention") -> RunReport:  # fmt: skip
    """The daily run (see the module docstring) as of ``now``; ``clock`` gives the time of each deletion.
    Commits as it goes, except in a dry run, which is rolled back at the end."""
    rules = Rules.of(section)
    report = RunReport(now, dry_run)

    def commit() -> None:
        if not dry_run:
            session.commit()

    try:
        previous = last_finished(session)
        since = previous.started_at - LOOKBACK_MARGIN if previous is not None else None
        run = RetentionRun(now=now, started_at=clock(), dry_run=dry_run, run_by=run_by[:64], rules=rules.text())
        session.add(run)
        if previous is not None and previous.rules != run.rules:
            report.rules_changed = f"{previous.rules or 'not recorded'} -> {run.rules}"
            log_event(log, "retention.rules_changed", before=previous.rules, after=run.rules)
        touched = link_events(session, since, clock())
        report.links_made = len(touched)
        commit()
        report.classified = classify(session, rules, touched, section.batch, commit, everything=bool(report.rules_changed))
        report.locks = follow_locks(session, store, RUN_OPERATOR, clock, section.case_years, section.batch, commit,
                                    dry_run)  # fmt: skip
        delete_due(session, store, rules, now, clock, report, section.batch, commit)
        run.links_made, run.classified = report.links_made, report.classified
        run.deleted, run.deleted_bytes, run.held = len(report.deleted), report.deleted_bytes, len(report.held)
        run.finished_at = clock()
        audit.record(session, Operator(run_by[:64], session_ref="retention"), "retention.run", run.finished_at,
                     detail=report.text())  # fmt: skip
        commit()
    finally:
        if dry_run:
            session.rollback()
    return report


# --- the fleet view's figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryUsage:
    category: str  # a Category value, or "" for segments not judged yet
    segments: int
    bytes: int

    @property
    def words(self) -> str:
        return CATEGORY_WORDS[Category(self.category)] if self.category else UNCLASSIFIED_WORDS


@dataclass(frozen=True)
class StorageUse:
    by_category: list[CategoryUsage]
    held_segments: int
    held_bytes: int
    deleted_segments: int
    deleted_bytes: int
    last_run: RetentionRun | None

    @property
    def total_bytes(self) -> int:
        return sum(u.bytes for u in self.by_category)


def storage_use(session: Session) -> StorageUse:
    """Storage used by stored footage per category (as the last run judged it), what legal holds keep, and
    what retention deleted."""
    order = [c.value for c in Category]
    found = {
        (cat or ""): CategoryUsage(cat or "", int(n), int(size or 0))
        for cat, n, size in session.execute(
            select(VideoSegment.retention_category, func.count(), func.sum(VideoSegment.size))
            .where(VideoSegment.state == "stored").group_by(VideoSegment.retention_category)
        )
    }  # fmt: skip
    usage = [found.get(c, CategoryUsage(c, 0, 0)) for c in order] + ([found[""]] if "" in found else [])
    hold = exists().where(
        FootageHold.device_id == VideoSegment.device_id, FootageHold.released_at.is_(None),
        FootageHold.started_at < VideoSegment.ended_at, FootageHold.ended_at > VideoSegment.started_at)  # fmt: skip
    held_n, held_size = session.execute(
        select(func.count(), func.sum(VideoSegment.size)).where(VideoSegment.state == "stored", hold)).one()  # fmt: skip
    gone_n, gone_size = session.execute(
        select(func.count(), func.sum(VideoSegment.size)).where(VideoSegment.state == "deleted")).one()  # fmt: skip
    return StorageUse(usage, int(held_n), int(held_size or 0), int(gone_n), int(gone_size or 0), last_finished(session))

