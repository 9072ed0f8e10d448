"""Footage retention by category: a paid stop's, a case's and an export's footage kept for their years (the
longest wins), footage with no event for its days; a case's legal hold (page action, audited) keeps footage
until released; the daily run deletes only what is due, never early, never held, once (a second run changes
nothing), audits each deletion and leaves a tombstone that the stop page and "Verify" call "deleted by
retention"; the fleet view shows the storage used per category."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from server.config import RetentionSection
from server.db.retention import FootageHold, FootageLink
from server.db.supervisors import AccessAudit
from server.db.video import VideoSegment
from server.evidence.export import plan_for_range
from server.review.audit import Operator
from server.review.audit_chain import verify_chain
from server.review.cases import CaseError, Channel, NewCase, open_case, place_hold
from server.review.retention import Category, Rules, RunReport, add_years, judge, run_retention, storage_use
from server.video.storage import FilesystemStore, segment_key

from .conftest import DEVICE, NUMBER, Workspace
from .footage_support import TIMES, T

SECTION = RetentionSection(no_event_days=30, paid_stop_years=2, case_years=7, export_years=3)
PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"
LATER = T + timedelta(days=2)  # a stretch of the shift with no event


def _extra(ws: Workspace, seq: int, start: datetime, size: int = 4096) -> None:
    """A stored segment of the device outside the stop (its object in the store, its row stored)."""
    key = segment_key(DEVICE, seq)
    ws.store.append(key, 0, bytes([seq % 256]) * size)
    ws.store.commit(key)
    with ws.sessions() as session, session.begin():
        session.add(VideoSegment(
            device_id=DEVICE, seq=seq, started_at=start, ended_at=start + timedelta(seconds=60), frames=900, size=size,
            sha256="0" * 64, prev_hash="0" * 64, entry_hash="0" * 64, entry_json="{}", state="stored",
            storage_key=key, created_at=start, stored_at=start,
        ))  # fmt: skip


def _run(ws: Workspace, now: datetime, dry_run: bool = False, section: RetentionSection = SECTION) -> RunReport:
    with ws.sessions() as session:
        return run_retention(session, ws.store, section, now, lambda: now, dry_run=dry_run, run_by="test")


def _rows(ws: Workspace) -> dict[int, VideoSegment]:
    with ws.sessions() as session:
        return {r.seq: r for r in session.scalars(select(VideoSegment).where(VideoSegment.device_id == DEVICE))}


def _deletions(ws: Workspace) -> list[tuple[str | None, int | None]]:
    with ws.sessions() as session:
        return list(session.execute(select(AccessAudit.device_id, AccessAudit.seq).where(
            AccessAudit.action == "footage.delete").order_by(AccessAudit.id)).tuples())  # fmt: skip


def test_deadline_rules_longest_category_wins_and_never_less_than_no_event() -> None:
    rules = Rules.of(SECTION)
    end = datetime(2026, 2, 28, 23, 0).astimezone()
    assert judge(rules, end, []) == judge(rules, end, ()) and judge(rules, end, []).category is Category.NO_EVENT
    assert judge(rules, end, []).retain_until == end + timedelta(days=30)
    both = judge(rules, end, [("paid_stop", end), ("case", end + timedelta(days=1))])
    assert both.category is Category.CASE and both.retain_until == add_years(end + timedelta(days=1), 7)
    short = judge(Rules(timedelta(days=5000), rules.years), end, [("paid_stop", end)])
    assert short.category is Category.PAID_STOP and short.retain_until == end + timedelta(days=5000)
    leap = datetime(2028, 2, 29, 12, 0).astimezone()
    assert add_years(leap, 1).day == 28 and add_years(leap, 4).day == 29


def test_segments_get_their_category_paid_stop_case_export_and_no_event(ws: Workspace) -> None:
    _extra(ws, 101, LATER)
    _extra(ws, 102, LATER + timedelta(days=1))
    with ws.sessions() as session, session.begin():
        plan_for_range(session, DEVICE, LATER + timedelta(days=1), LATER + timedelta(days=1, minutes=1), "anna",
                       T + timedelta(days=3, hours=1))  # fmt: skip
    report = _run(ws, T + timedelta(days=4))
    rows = _rows(ws)
    assert {s: rows[s].retention_category for s in rows} == {
        1: "paid_stop", 2: "paid_stop", 3: "paid_stop", 4: "paid_stop", 5: "paid_stop", 101: "no_event", 102: "export"}
    assert rows[1].retain_until == add_years(TIMES.approved, 2), "the payment's years from the payment"
    assert rows[101].retain_until == rows[101].ended_at + timedelta(days=30)
    assert rows[102].retain_until == add_years(T + timedelta(days=3, hours=1), 3), "the export's years from the export"
    assert report.deleted == [] and report.classified == 7
    with ws.sessions() as session, session.begin():
        case = open_case(session, NewCase(NUMBER, Channel.WRITTEN, "", "disputes the speed"), Operator("anna"),
                         T + timedelta(days=5))  # fmt: skip
    _run(ws, T + timedelta(days=6))
    rows = _rows(ws)
    assert {rows[s].retention_category for s in (1, 2, 3, 4, 5)} == {"case"}, "the case keeps longer: it wins"
    assert rows[1].retain_until == add_years(T + timedelta(days=5), 7) and rows[101].retention_category == "no_event"
    with ws.sessions() as session:
        sources = set(session.scalars(select(FootageLink.source)))
    assert sources == {f"payment:{NUMBER}", f"case:{case.id}", f"export:{DEVICE}"}


def test_the_run_never_deletes_early_deletes_once_and_leaves_an_audited_tombstone(ws: Workspace) -> None:
    _extra(ws, 101, LATER)
    _extra(ws, 102, LATER + timedelta(minutes=1))
    due = LATER + timedelta(minutes=1) + timedelta(days=30)  # the end of 101 + 30 days
    key = segment_key(DEVICE, 101)
    report = _run(ws, due - timedelta(seconds=1))
    assert report.deleted == [] and ws.store.committed_size(key) == 4096, "one second early: nothing goes"
    report = _run(ws, due)
    assert [(d, s) for d, s, _ in report.deleted] == [(DEVICE, 101)] and report.deleted_bytes == 4096
    rows = _rows(ws)
    assert rows[101].state == "deleted" and rows[101].deleted_at == due
    assert rows[101].deleted_reason is not None and rows[101].deleted_reason.startswith("retention: no_event")
    assert ws.store.committed_size(key) is None
    assert rows[102].state == "stored" and {rows[s].state for s in (1, 2, 3, 4, 5)} == {"stored"}
    assert _deletions(ws) == [(DEVICE, 101)]
    again = _run(ws, due)
    assert again.deleted == [] and _deletions(ws) == [(DEVICE, 101)], "a second run changes nothing"
    with ws.sessions() as session:
        runs = list(session.scalars(select(AccessAudit.detail).where(AccessAudit.action == "retention.run")))
        chain = verify_chain(session)
    assert len(runs) == 3 and "deleted 1 segment(s) (4096 bytes)" in runs[1]
    assert chain.intact, chain.text()


def test_an_object_deleted_by_a_run_cut_off_before_its_row_was_marked_is_marked_by_the_next(ws: Workspace) -> None:
    _extra(ws, 101, LATER)
    assert ws.store.delete(segment_key(DEVICE, 101)) is True
    assert ws.store.delete(segment_key(DEVICE, 101)) is False, "deleting twice is harmless"
    report = _run(ws, LATER + timedelta(days=31))
    assert [s for _, s, _ in report.deleted] == [101] and _rows(ws)[101].state == "deleted"


def test_a_dry_run_says_what_would_go_and_changes_nothing(ws: Workspace) -> None:
    _extra(ws, 101, LATER)
    report = _run(ws, LATER + timedelta(days=31), dry_run=True)
    assert [s for _, s, _ in report.deleted] == [101] and "would delete 1 segment(s)" in report.text()
    rows = _rows(ws)
    assert rows[101].state == "stored" and rows[101].retention_category is None
    assert ws.store.committed_size(segment_key(DEVICE, 101)) == 4096 and _deletions(ws) == []
    with ws.sessions() as session:
        assert session.scalar(select(func.count()).select_from(FootageLink)) == 0


def test_a_legal_hold_keeps_footage_past_its_retention_until_released(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    case_id = ws.open_case()
    url = f"/review/cases/{case_id}"
    page = ws.client.get(url).text
    assert 'data-holding="no"' in page and "hold-place" in page
    placed = ws.client.post(f"{url}/hold", data={"csrf": ws.csrf(url), "reason": "court order 12/2026"},
                            follow_redirects=False)  # fmt: skip
    assert placed.status_code == 303 and placed.headers["location"] == f"{url}#hold"
    page = ws.client.get(url).text
    assert 'data-holding="yes"' in page and "court order 12/2026" in page
    twice = ws.client.post(f"{url}/hold", data={"csrf": ws.csrf(url), "reason": ""}, follow_redirects=False)
    assert twice.status_code == 409, "a case holds its footage once"
    with ws.sessions() as session:
        holds = list(session.scalars(select(FootageHold)))
        actions = list(session.scalars(select(AccessAudit.action).where(AccessAudit.action.like("case.hold%"))))
    assert [(h.device_id, h.started_at, h.ended_at, h.placed_by) for h in holds] == [
        (DEVICE, T - timedelta(minutes=2), T + timedelta(seconds=70, minutes=2), "anna")]
    assert actions == ["case.hold_placed"]
    far = T + timedelta(days=365 * 9)  # past the case's 7 years
    report = _run(ws, far)
    assert report.deleted == [] and sorted(s for _, s in report.held) == [1, 2, 3, 4, 5]
    assert {r.state for r in _rows(ws).values()} == {"stored"}
    released = ws.client.post(f"{url}/hold/release", data={"csrf": ws.csrf(url)}, follow_redirects=False)
    assert released.status_code == 303
    assert 'data-holding="no"' in ws.client.get(url).text
    report = _run(ws, far)
    assert sorted(s for _, s, _ in report.deleted) == [1, 2, 3, 4, 5]
    with ws.sessions() as session:
        actions = list(session.scalars(select(AccessAudit.action).where(AccessAudit.action.like("case.hold%"))))
    assert actions == ["case.hold_placed", "case.hold_released"]
    stop = ws.client.get(PAGE).text
    assert "deleted by retention" in stop and "is missing" not in stop
    verified = ws.client.post(f"{PAGE}/verify", data={"csrf": ws.csrf(PAGE)}, follow_redirects=True)
    assert verified.status_code == 200
    assert "deleted by retention" in verified.text and "the stored object is missing" not in verified.text
    assert 'class="verdict verdict-deleted"' in verified.text


def test_holds_are_refused_for_an_unknown_case_and_an_auditor_may_not_hold(ws: Workspace) -> None:
    with ws.sessions() as session, session.begin():
        try:
            place_hold(session, 999, Operator("anna"), T)
        except CaseError as exc:
            assert "no case 999" in str(exc)
        else:
            raise AssertionError("a hold on no case was accepted")
    assert ws.login("anna") == 303
    case_id = ws.open_case()
    assert ws.login("olga") == 303
    url = f"/review/cases/{case_id}"
    page = ws.client.get(url).text
    assert "hold-place" not in page, "an auditor sees no hold button"
    refused = ws.client.post(f"{url}/hold", data={"csrf": ws.csrf(url)}, follow_redirects=False)
    assert refused.status_code == 403


def test_the_fleet_view_shows_storage_per_category(ws: Workspace) -> None:
    _extra(ws, 101, LATER, size=1000)
    _extra(ws, 102, LATER + timedelta(minutes=1), size=3000)
    with ws.sessions() as session:
        before = storage_use(session)
    assert [u.category for u in before.by_category] == ["paid_stop", "case", "export", "no_event", ""]
    _run(ws, LATER + timedelta(minutes=1, days=30))  # 101 is due, 102 not yet
    with ws.sessions() as session:
        use = storage_use(session)
        shift_bytes = session.scalar(select(func.sum(VideoSegment.size)).where(VideoSegment.seq < 100))
    figures = {u.category: (u.segments, u.bytes) for u in use.by_category}
    assert figures == {"paid_stop": (5, shift_bytes), "case": (0, 0), "export": (0, 0), "no_event": (1, 3000)}
    assert (use.deleted_segments, use.deleted_bytes) == (1, 1000) and use.last_run is not None
    assert ws.login("adam") == 303
    page = ws.client.get("/review/fleet").text
    shown = dict(re.findall(r'<tr class="category" data-category="(\w+)" data-bytes="(\d+)"', page))
    assert shown == {"paid_stop": str(shift_bytes), "case": "0", "export": "0", "no_event": "3000"}
    assert re.search(r'<tr class="deleted" data-bytes="1000">', page) and "deleted by retention" in page


def test_the_filesystem_store_deletes_a_committed_object_once(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    key = segment_key("DEV-1", 7)
    store.append(key, 0, b"abc")
    store.commit(key)
    assert store.delete(key) is True and store.committed_size(key) is None and store.delete(key) is False


def test_the_command_line_run_deletes_what_is_due_and_looks_ahead_only_in_a_dry_run(
    ws: Workspace, server_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    _extra(ws, 101, LATER)  # no event: due 90 days later by the default configuration, long before today
    config = tmp_path / "server.toml"
    config.write_text(f'[database]\nurl = "{server_db_url}"\n[storage]\nvideo_dir = "{ws.config.storage.video_dir}"\n',
                      encoding="utf-8")  # fmt: skip
    assert main(["--config", str(config), "retention", "run", "--now", "2999-01-01T00:00:00Z"]) == 1
    assert "only a --dry-run may look ahead" in capsys.readouterr().err
    assert main(["--config", str(config), "retention", "run", "--dry-run", "--now", "2999-01-01T00:00:00+05:00"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {DEVICE} #101" in out and f"would delete {DEVICE} #1 " in out
    assert _rows(ws)[101].state == "stored"
    assert main(["--config", str(config), "retention", "run"]) == 0
    assert "deleted 1 segment(s)" in capsys.readouterr().out
    assert _rows(ws)[101].state == "deleted" and _rows(ws)[1].state == "stored"
    assert _deletions(ws) == [(DEVICE, 101)]


def test_a_deleted_segment_is_never_stored_again(ws: Workspace) -> None:
    from server.routes.video import service_for
    from server.video.uploads import UploadError

    report = _run(ws, T + timedelta(days=365 * 6))
    assert sorted(s for _, s, _ in report.deleted) == [1, 2, 3, 4, 5]
    entry = _rows(ws)[1].entry_json.encode()
    with pytest.raises(UploadError) as refused:
        service_for(ws.client.app).announce(DEVICE, 1, entry)
    assert refused.value.status == 410 and "deleted by retention" in refused.value.reason
    assert _rows(ws)[1].state == "deleted" and ws.store.committed_size(segment_key(DEVICE, 1)) is None


def test_the_chain_link_to_a_deleted_predecessor_is_still_checked_from_its_tombstone(ws: Workspace) -> None:
    from server.video.integrity import Verdict, verify_segments

    with ws.sessions() as session, session.begin():
        first = session.scalar(select(VideoSegment).where(VideoSegment.device_id == DEVICE, VideoSegment.seq == 1))
        assert first is not None and ws.store.delete(first.storage_key)
        first.state, first.deleted_at, first.deleted_reason = "deleted", T + timedelta(days=9999), "retention: test"
    with ws.sessions() as session, session.begin():
        checks = verify_segments(session, ws.store, DEVICE, [1, 2], T + timedelta(days=9999), "test")
    assert [c.verdict for c in checks] == [Verdict.DELETED, Verdict.INTACT], [c.reasons for c in checks]
    assert "deleted by retention" in checks[0].text()


@pytest.mark.parametrize("ws", ["s3"], indirect=True)
def test_footage_still_under_the_stores_object_lock_is_kept_and_tried_again(ws: Workspace) -> None:
    """On object storage with Object Lock a segment stays locked for ``lock_days`` from its upload (here a
    day from now, the footage being months old): the run keeps it stored, says so, and audits no deletion."""
    _extra(ws, 101, LATER)
    key = segment_key(DEVICE, 101)
    report = _run(ws, LATER + timedelta(days=31))
    assert report.deleted == [] and report.locked == [(DEVICE, 101)]
    assert "1 kept by the store's object lock" in report.text()
    assert _rows(ws)[101].state == "stored" and ws.store.committed_size(key) == 4096
    assert _deletions(ws) == []


def test_changed_rules_judge_every_stored_segment_again_shorter_and_longer(ws: Workspace) -> None:
    _extra(ws, 101, LATER)
    end = LATER + timedelta(seconds=60)
    first = _run(ws, LATER + timedelta(days=1))
    assert first.rules_changed == "" and _rows(ws)[101].retain_until == end + timedelta(days=30)
    shorter = RetentionSection(no_event_days=10, paid_stop_years=2, case_years=7, export_years=3)
    report = _run(ws, end + timedelta(days=10), section=shorter)
    assert report.rules_changed == "no_event=30d paid_stop=2y case=7y export=3y -> no_event=10d paid_stop=2y case=7y export=3y"
    assert [(d, s) for d, s, _ in report.deleted] == [(DEVICE, 101)], "footage judged before keeps no longer than now"
    assert _deletions(ws) == [(DEVICE, 101)]
    _extra(ws, 102, LATER + timedelta(days=20))
    _run(ws, LATER + timedelta(days=21), section=shorter)
    assert _rows(ws)[102].retain_until == LATER + timedelta(days=30, seconds=60)
    longer = RetentionSection(no_event_days=90, paid_stop_years=2, case_years=7, export_years=3)
    report = _run(ws, LATER + timedelta(days=31), section=longer)
    assert report.rules_changed.endswith("-> no_event=90d paid_stop=2y case=7y export=3y") and report.deleted == []
    assert _rows(ws)[102].retain_until == LATER + timedelta(days=110, seconds=60), "the fleet view shows the new date"
    assert _run(ws, LATER + timedelta(days=32), section=longer).rules_changed == "", "the same rules: judged once"
    with ws.sessions() as session:
        details = list(session.scalars(select(AccessAudit.detail).where(AccessAudit.action == "retention.run")))
    assert sum("rules changed" in d for d in details) == 2
