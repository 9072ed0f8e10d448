"""The store's Object Lock follows retention: what retention keeps, the store refuses to delete.

On object storage with Object Lock (``server.video.s3_store``) each segment is written under a compliance
lock of ``storage.s3.lock_days``. Retention may judge that footage must be kept longer (a payment, a case or
an export links it), and a case may put it on legal hold. Then:

- **compliance lock**: a stored segment whose category is not ``no_event`` and whose ``retain_until`` runs
  past the lock the store is known to hold (``video_segment.store_locked_until``) has its lock extended to
  ``retain_until``. A lock is never shortened (the store would refuse): a later, earlier deadline leaves it
  as it is, and the retention run then finds the object locked and tries again later. Footage with no event
  keeps the lock it was written with;
- **legal hold**: a stored segment an active legal hold covers has the object's legal hold ON
  (``store_legal_hold``); once no active hold covers it any more, OFF. A segment two cases hold stays ON
  until both are released;
- **case files**: each is locked until the case's category's years from the case's last change (or the
  file's, if later), written so (``keep_case_file``) and extended as the case changes.

``follow_locks`` does all three as a step of the retention run, and is idempotent: each row is marked only
once the store did it, so a store that is down, or a run cut off part-way, leaves the rest for the next run
(nothing is marked done that was not done). Every change is a row of the access audit (``footage.lock``,
``footage.legal_hold``, ``case.file_lock``). ``follow_holds`` does the legal-hold part alone, right after a
hold is put or released. A store without Object Lock (the folder store, a bucket without it, ``object_lock =
"off"``) makes all of this a no-op that says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol, runtime_checkable

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select
from sqlalchemy.orm import Session

from core.structured_log import log_event
from server.db.cases import Case, CaseFile
from server.db.retention import FootageHold
from server.db.video import VideoSegment
from server.review import audit
from server.review.audit import Actor
from server.video.storage import BlobStored, StoreUnavailable, VideoStore

log = logging.getLogger(__name__)
NO_LOCK = "the store keeps no Object Lock (a folder, a bucket without Object Lock, or object_lock = off)"
UNLOCKED = "no_event"  # the category whose footage keeps the lock it was written with


@runtime_checkable
class LockingStore(Protocol):
    """A store that can lock evidence (``server.video.s3_store.S3Store``)."""

    def locks_evidence(self) -> bool: ...
    def retain_until(self, key: str, until: datetime) -> bool: ...
    def legal_hold(self, key: str, on: bool) -> bool: ...
    def retain_blob_until(self, key: str, until: datetime) -> bool: ...
    def put_blob_until(
        self, area_key: Callable[[str], str], chunks: Iterable[bytes], limit: int, retain_until: datetime | None
    ) -> tuple[BlobStored, datetime | None]: ...


def locking(store: VideoStore) -> LockingStore | None:
    """The store, if it locks evidence now (``StoreUnavailable`` if it cannot tell); else None."""
    if isinstance(store, LockingStore) and store.locks_evidence():
        return store
    return None


@dataclass
class LockReport:
    """What one pass did (or, in a dry run, would do)."""

    extended: int = 0
    held_on: int = 0
    held_off: int = 0
    files: int = 0
    missing: int = 0  # rows whose object the store does not have (the verifier reports them)
    skipped: str = ""  # why nothing was done at all (the store keeps no lock)
    pending: str = ""  # the store failed: what is left waits for the next run

    def text(self) -> str:
        if self.skipped:
            return f"object lock: nothing to do, {self.skipped}"
        done = (f"object lock: {self.extended} lock(s) extended, legal hold {self.held_on} on / {self.held_off} "
                f"off, {self.files} case file lock(s) extended")  # fmt: skip
        if self.missing:
            done += f", {self.missing} object(s) missing"
        if self.pending:
            done += f"; the store failed, the rest is left for the next run ({self.pending})"
        return done


def _active_hold(row: type[VideoSegment] = VideoSegment) -> ColumnElement[bool]:
    return exists().where(
        FootageHold.device_id == row.device_id, FootageHold.released_at.is_(None),
        FootageHold.started_at < row.ended_at, FootageHold.ended_at > row.started_at)  # fmt: skip


def _done(report: LockReport, change: Callable[[], object]) -> bool:
    """Ask the store for one change; False (counted as missing) when it has no such object."""
    try:
        change()
    except FileNotFoundError:
        report.missing += 1
        return False
    return True


def _pages(session: Session, where: list[ColumnElement[bool]], batch: int) -> Iterable[list[VideoSegment]]:
    after = 0
    while True:
        rows = list(session.scalars(select(VideoSegment).where(VideoSegment.id > after, *where)
                                    .order_by(VideoSegment.id).limit(batch)))  # fmt: skip
        if not rows:
            return
        after = rows[-1].id
        yield rows


def _extend_segments(session: Session, store: LockingStore, who: Actor, clock: Callable[[], datetime],
                     report: LockReport, batch: int, commit: Callable[[], None], dry_run: bool) -> None:  # fmt: skip
    due = [VideoSegment.state == "stored", VideoSegment.retain_until.is_not(None),
           VideoSegment.retention_category.is_not(None), VideoSegment.retention_category != UNLOCKED,
           or_(VideoSegment.store_locked_until.is_(None), VideoSegment.store_locked_until < VideoSegment.retain_until)]  # fmt: skip
    for rows in _pages(session, due, batch):
        for row in rows:
            assert row.retain_until is not None
            if row.retain_until <= clock():  # due now: no lock to set in the past (the run deletes it)
                continue
            if not dry_run:
                if not _done(report, partial(store.retain_until, row.storage_key, row.retain_until)):
                    continue
                row.store_locked_until = row.retain_until
                audit.record(session, who, "footage.lock", clock(), device_id=row.device_id, seq=row.seq,
                             detail=f"блокировка хранилища продлена / the store's object lock extended to "
                                    f"{row.retain_until.isoformat()} ({row.retention_category})")  # fmt: skip
            report.extended += 1
        commit()


def _follow_holds(session: Session, store: LockingStore, who: Actor, clock: Callable[[], datetime],
                  report: LockReport, batch: int, commit: Callable[[], None], dry_run: bool) -> None:  # fmt: skip
    for on, where in (
        (True, and_(VideoSegment.store_legal_hold.is_(False), _active_hold())),
        (False, and_(VideoSegment.store_legal_hold.is_(True), not_(_active_hold()))),
    ):
        for rows in _pages(session, [VideoSegment.state == "stored", where], batch):
            for row in rows:
                if not dry_run:
                    if not _done(report, partial(store.legal_hold, row.storage_key, on)):
                        continue
                    row.store_legal_hold = on
                    state = "ON / включено" if on else "OFF / снято"
                    audit.record(session, who, "footage.legal_hold", clock(), device_id=row.device_id,
                                 seq=row.seq, detail=f"удержание в хранилище / the store's legal hold {state}")  # fmt: skip
                if on:
                    report.held_on += 1
                else:
                    report.held_off += 1
            commit()


def case_file_deadline(case_years: int, case_changed: datetime, file_added: datetime) -> datetime:
    """Until when a case file is kept locked: the case category's years from the later of the case's last
    change and the file's attachment."""
    from server.review.retention import add_years

    return add_years(max(case_changed, file_added), case_years)


def _extend_case_files(session: Session, store: LockingStore, who: Actor, clock: Callable[[], datetime],
                       report: LockReport, case_years: int, batch: int, commit: Callable[[], None],
                       dry_run: bool) -> None:  # fmt: skip
    after = 0
    while True:
        found = list(session.execute(
            select(CaseFile, Case.updated_at, Case.protocol_number).join(Case, Case.id == CaseFile.case_id)
            .where(CaseFile.id > after).order_by(CaseFile.id).limit(batch)).tuples())  # fmt: skip
        if not found:
            return
        after = found[-1][0].id
        for file, changed, number in found:
            until = case_file_deadline(case_years, changed, file.added_at)
            if until <= clock() or (file.store_locked_until is not None and file.store_locked_until >= until):
                continue
            if not dry_run:
                if not _done(report, partial(store.retain_blob_until, file.storage_key, until)):
                    continue
                file.store_locked_until = until
                audit.record(session, who, "case.file_lock", clock(), protocol_number=number,
                             detail=f"case {file.case_id} file {file.id} sha256 {file.sha256}: the store's object "
                                    f"lock extended to {until.isoformat()}")  # fmt: skip
            report.files += 1
        commit()


def follow_locks(session: Session, store: VideoStore, who: Actor, clock: Callable[[], datetime], case_years: int,
                 batch: int, commit: Callable[[], None], dry_run: bool = False) -> LockReport:  # fmt: skip
    """Make the store's locks follow retention and legal holds (see the module docstring); commits after each
    batch. A store that fails stops the pass: what was done stays marked, the rest waits for the next run."""
    report = LockReport()
    try:
        locks = locking(store)
        if locks is None:
            report.skipped = NO_LOCK
            log_event(log, "retention.no_object_lock", note=NO_LOCK)
            return report
        _extend_segments(session, locks, who, clock, report, batch, commit, dry_run)
        _follow_holds(session, locks, who, clock, report, batch, commit, dry_run)
        _extend_case_files(session, locks, who, clock, report, case_years, batch, commit, dry_run)
    except StoreUnavailable as exc:
        commit()  # what the store did is marked (each row only after the store did it)
        report.pending = str(exc)[:300]
        log_event(log, "retention.object_lock_pending", error=report.pending)
    return report


def follow_holds(session: Session, store: VideoStore, who: Actor, clock: Callable[[], datetime],
                 batch: int = 500) -> LockReport:  # fmt: skip
    """The legal-hold part of ``follow_locks`` alone (right after a hold is put or released), committing as
    it goes; a store that is down leaves it to the next retention run."""
    report = LockReport()
    try:
        locks = locking(store)
        if locks is None:
            report.skipped = NO_LOCK
            return report
        _follow_holds(session, locks, who, clock, report, batch, session.commit, False)
    except StoreUnavailable as exc:
        session.commit()
        report.pending = str(exc)[:300]
        log_event(log, "review.legal_hold_pending", error=report.pending)
    return report


def keep_case_file(store: VideoStore, case_id: int, chunks: Iterable[bytes], limit: int,
                   retain_until: datetime) -> tuple[BlobStored, datetime | None]:  # fmt: skip
    """Keep a case's file under ``cases/<case>/<sha256>``: locked until ``retain_until`` where the store locks
    evidence; returns the file and its lock's date (None: kept without a lock)."""
    locks = locking(store)

    def area_key(digest: str) -> str:
        return f"cases/{case_id}/{digest}"

    if locks is None:
        return store.put_blob(area_key, chunks, limit), None
    return locks.put_blob_until(area_key, chunks, limit, retain_until)
