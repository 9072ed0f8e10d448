"""The store's Object Lock follows retention, on a real SeaweedFS with Object Lock: footage a payment, a case or
an export keeps longer than its lock is locked until its retention deadline (never shortened, once, audited);
a case's legal hold turns the objects' legal hold ON at once and its release OFF (unless another case still
holds them); case files are written locked for the case's years and extended as the case changes; a store
that is down leaves the work to the next run, marked done only once done. The folder store says it keeps no
lock and does nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from server.config import RetentionSection
from server.db.cases import CaseFile
from server.db.supervisors import AccessAudit
from server.db.video import VideoSegment
from server.review.audit import Operator
from server.review.audit_chain import verify_chain
from server.review.cases import CaseState, move_case
from server.review.object_locks import NO_LOCK
from server.review.retention import RunReport, add_years, run_retention
from server.video.s3_store import S3Store
from server.video.storage import segment_key
from tests.s3_support import SeaweedServer

from .conftest import DEVICE, NUMBER, Workspace
from .footage_support import TIMES, T

SECTION = RetentionSection(no_event_days=30, paid_stop_years=2, case_years=7, export_years=3)
PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"
SHIFT = (1, 2, 3, 4, 5)
NOW = T + timedelta(days=4)


def _run(ws: Workspace, now: datetime = NOW, section: RetentionSection = SECTION, dry_run: bool = False) -> RunReport:
    with ws.sessions() as session:
        return run_retention(session, ws.store, section, now, lambda: now, dry_run=dry_run, run_by="test")


def _rows(ws: Workspace) -> dict[int, VideoSegment]:
    with ws.sessions() as session:
        return {r.seq: r for r in session.scalars(select(VideoSegment).where(VideoSegment.device_id == DEVICE))}


def _audited(ws: Workspace, action: str) -> list[tuple[int | None, str]]:
    with ws.sessions() as session:
        return list(session.execute(select(AccessAudit.seq, AccessAudit.detail).where(
            AccessAudit.action == action).order_by(AccessAudit.id)).tuples())  # fmt: skip


def _s3(ws: Workspace) -> S3Store:
    assert isinstance(ws.store, S3Store)
    return ws.store


def _lock(ws: Workspace, seq: int) -> datetime | None:
    return _s3(ws).object_lock_until(segment_key(DEVICE, seq))


def _locks(ws: Workspace) -> dict[int, datetime | None]:
    return {seq: _lock(ws, seq) for seq in SHIFT}


def _deadlines(ws: Workspace) -> dict[int, datetime | None]:
    rows = _rows(ws)
    return {seq: rows[seq].retain_until for seq in SHIFT}


def _held_in_store(ws: Workspace) -> list[int]:
    return [seq for seq in SHIFT if _s3(ws).legal_hold_on(segment_key(DEVICE, seq))]


def _hold(ws: Workspace, case_id: int, release: bool = False) -> int:
    url = f"/review/cases/{case_id}"
    data = {"csrf": ws.csrf(url)} | ({} if release else {"reason": "court order 12/2026"})
    return ws.client.post(f"{url}/hold{'/release' if release else ''}", data=data, follow_redirects=False).status_code


def _attach(ws: Workspace, case_id: int, data: bytes) -> int:
    url = f"/review/cases/{case_id}"
    response = ws.client.post(f"{url}/files", data={"csrf": ws.csrf(url)},
                              files={"file": ("letter.pdf", data, "application/pdf")}, follow_redirects=False)  # fmt: skip
    return response.status_code


@pytest.mark.parametrize("ws", ["s3"], indirect=True)
def test_linked_footage_is_locked_until_its_retention_deadline_once_and_never_shortened(ws: Workspace) -> None:
    upload_lock = _lock(ws, 1)
    assert upload_lock is not None and upload_lock < add_years(TIMES.approved, 2), "written locked for a day"
    dry = _run(ws, dry_run=True)
    assert dry.locks.extended == 5 and _lock(ws, 1) == upload_lock, "a dry run says what it would lock, locks nothing"
    assert _rows(ws)[1].store_locked_until is None and _audited(ws, "footage.lock") == []
    report = _run(ws)
    paid_until = add_years(TIMES.approved, 2)
    assert _deadlines(ws)[1] == paid_until and {_rows(ws)[s].retention_category for s in SHIFT} == {"paid_stop"}
    assert _locks(ws) == _deadlines(ws), "the paid stop's footage: locked its two years"
    assert report.locks.extended == 5 and "5 lock(s) extended" in report.text()
    rows = _rows(ws)
    assert {s: rows[s].store_locked_until for s in SHIFT} == _deadlines(ws)
    assert [seq for seq, _ in _audited(ws, "footage.lock")] == list(SHIFT)
    assert paid_until.isoformat() in _audited(ws, "footage.lock")[0][1]

    again = _run(ws)
    assert again.locks.extended == 0 and len(_audited(ws, "footage.lock")) == 5, "a second run changes nothing"

    ws.clock.advance((NOW - ws.clock.now()).total_seconds() + 3600)
    assert ws.login("anna") == 303
    ws.open_case()  # the case keeps the footage seven years from its change: longer, so the lock follows
    _run(ws, NOW + timedelta(days=1))
    case_until = add_years(ws.clock.now(), 7)
    assert {_rows(ws)[s].retention_category for s in SHIFT} == {"case"} and _deadlines(ws)[1] == case_until
    assert _locks(ws) == _deadlines(ws) and len(_audited(ws, "footage.lock")) == 10

    with ws.sessions() as session, session.begin():  # a deadline now earlier than the lock, its mark lost
        row = session.scalars(select(VideoSegment).where(VideoSegment.device_id == DEVICE, VideoSegment.seq == 1)).one()
        row.retain_until, row.store_locked_until = paid_until, None
    _run(ws, NOW + timedelta(days=2))
    assert _locks(ws)[1] == case_until, "never shortened"
    with ws.sessions() as session:
        chain = verify_chain(session)
    assert chain.intact, chain.text()
    assert _s3(ws).retain_until(segment_key(DEVICE, 1), paid_until) is True
    assert _lock(ws, 1) == case_until, "asking the store for an earlier date leaves the lock as it is"


@pytest.mark.parametrize("ws", ["s3"], indirect=True)
def test_footage_with_no_event_keeps_the_lock_it_was_written_with(ws: Workspace) -> None:
    key = segment_key(DEVICE, 101)
    ws.store.append(key, 0, b"\x01" * 4096)
    ws.store.commit(key)
    later = T + timedelta(days=2)
    with ws.sessions() as session, session.begin():
        session.add(VideoSegment(
            device_id=DEVICE, seq=101, started_at=later, ended_at=later + timedelta(seconds=60), frames=900, size=4096,
            sha256="0" * 64, prev_hash="0" * 64, entry_hash="0" * 64, entry_json="{}", state="stored",
            storage_key=key, created_at=later, stored_at=later))  # fmt: skip
    written = _lock(ws, 101)
    _run(ws)
    assert _rows(ws)[101].retention_category == "no_event" and _lock(ws, 101) == written
    assert _rows(ws)[101].store_locked_until is None


@pytest.mark.parametrize("ws", ["s3"], indirect=True)
def test_a_legal_hold_turns_the_objects_legal_hold_on_and_its_release_off_unless_another_case_holds(
    ws: Workspace,
) -> None:
    assert ws.login("anna") == 303
    first, second = ws.open_case(), ws.open_case()
    assert _held_in_store(ws) == []
    assert _hold(ws, first) == 303
    assert _held_in_store(ws) == list(SHIFT), "ON as soon as the hold is put"
    assert {_rows(ws)[s].store_legal_hold for s in SHIFT} == {True}
    assert _hold(ws, second) == 303
    assert _hold(ws, first, release=True) == 303
    assert _held_in_store(ws) == list(SHIFT), "the second case still holds the footage"
    report = _run(ws)
    assert (report.locks.held_on, report.locks.held_off) == (0, 0), "the run finds nothing left to do"
    assert _hold(ws, second, release=True) == 303
    assert _held_in_store(ws) == []
    assert {_rows(ws)[s].store_legal_hold for s in SHIFT} == {False}
    details = [detail for _, detail in _audited(ws, "footage.legal_hold")]
    assert len(details) == 10 and sum("legal hold ON" in d for d in details) == 5
    assert sum("legal hold OFF" in d for d in details) == 5


@pytest.mark.parametrize("ws", ["s3"], indirect=True)
def test_case_files_are_written_locked_for_the_cases_years_and_extended_as_the_case_changes(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    case_id = ws.open_case()
    assert _attach(ws, case_id, b"%PDF-1.4\n" + b"\x02" * 3000) == 303
    with ws.sessions() as session:
        file = session.scalars(select(CaseFile).where(CaseFile.case_id == case_id)).one()
    years = ws.config.retention.case_years
    attached_until = add_years(ws.clock.now(), years)
    assert file.store_locked_until == attached_until
    assert _s3(ws).blob_lock_until(file.storage_key) == attached_until, "written under the lock"
    ws.clock.advance(timedelta(days=40).total_seconds())
    with ws.sessions() as session, session.begin():
        move_case(session, case_id, CaseState.UNDER_REVIEW, Operator("anna"), ws.clock.now())
    report = _run(ws, ws.clock.now(), section=ws.config.retention)
    moved_until = add_years(ws.clock.now(), years)
    assert report.locks.files == 1 and _s3(ws).blob_lock_until(file.storage_key) == moved_until
    (detail,) = [detail for _, detail in _audited(ws, "case.file_lock")]
    assert detail.endswith(moved_until.isoformat())
    assert _run(ws, ws.clock.now(), section=ws.config.retention).locks.files == 0


def test_on_the_folder_store_the_run_says_it_keeps_no_lock_and_does_nothing(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    case_id = ws.open_case()
    assert _hold(ws, case_id) == 303
    report = _run(ws)
    assert report.locks.skipped == NO_LOCK and "keeps no Object Lock" in report.text()
    assert {(r.store_locked_until, r.store_legal_hold) for r in _rows(ws).values()} == {(None, False)}
    assert _audited(ws, "footage.lock") == [] and _audited(ws, "footage.legal_hold") == []


def test_a_store_that_is_down_leaves_the_lock_work_to_the_next_run(own_store_ws: tuple[Workspace, SeaweedServer]) -> None:
    ws, weed = own_store_ws
    assert ws.login("anna") == 303
    case_id = ws.open_case()
    assert _s3(ws).locks_evidence()  # the bucket's settings are known before it goes away
    weed.stop()
    assert _hold(ws, case_id) == 303, "the hold is kept in the database; the store's follows"
    report = _run(ws)
    assert report.locks.pending and "left for the next run" in report.text()
    assert {(r.store_locked_until, r.store_legal_hold) for r in _rows(ws).values()} == {(None, False)}
    assert _audited(ws, "footage.lock") == [] and _audited(ws, "footage.legal_hold") == []
    weed.start()
    report = _run(ws)
    case_until = add_years(ws.clock.now(), 7)
    assert report.locks.extended == 5 and report.locks.held_on == 5 and not report.locks.pending
    assert _deadlines(ws)[1] == case_until and _locks(ws) == _deadlines(ws) and _held_in_store(ws) == list(SHIFT)
    assert [seq for seq, _ in _audited(ws, "footage.lock")] == list(SHIFT)


def test_the_command_line_run_exits_3_while_the_store_is_down(
    own_store_ws: tuple[Workspace, SeaweedServer], server_db_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from server.cli import main

    ws, weed = own_store_ws
    config = tmp_path / "server.toml"
    config.write_text(f'[database]\nurl = "{server_db_url}"\n[storage]\nurl = "s3://{_s3(ws).bucket}/video"\n'
                      f'[storage.s3]\nendpoint = "{weed.endpoint}"\naccess_key = "patrolkit-test"\n'
                      f'secret_key = "patrolkit-test"\ntimeout_s = 5\n', encoding="utf-8")  # fmt: skip
    weed.stop()
    assert main(["--config", str(config), "retention", "run"]) == 3
    assert "the next run does the rest" in capsys.readouterr().err
    weed.start()
    assert main(["--config", str(config), "retention", "run"]) == 0
    assert "5 lock(s) extended" in capsys.readouterr().out
    assert _locks(ws)[1] == add_years(TIMES.approved, 5) and _locks(ws) == _deadlines(ws)
