"""Verify on a stop: for each stored segment the SHA-256 of the stored object, the device's signature over its
manifest entry and the entry's link in the chain, with a verdict and its reason; the background verifier
finds rot on the disk by itself; every result is kept and shown."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from server.db.supervisors import AccessAudit
from server.db.video import SegmentVerification, VideoSegment
from server.video.integrity import Verdict, verify_segments
from server.video.storage import segment_key
from server.video.verifier import BackgroundVerifier

from .conftest import DEVICE, NUMBER, Workspace, make_workspace
from .footage_support import Shift

PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"


def _verify(ws: Workspace) -> str:
    token = ws.csrf(PAGE)
    response = ws.client.post(f"{PAGE}/verify", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].endswith("#integrity")
    return ws.client.get(PAGE).text


def _latest(sessions: sessionmaker[Session]) -> dict[int, SegmentVerification]:
    with sessions() as session:
        rows = session.scalars(select(SegmentVerification).order_by(SegmentVerification.id))
        return {r.seq: r for r in rows}


def _row_of(page: str, seq: int) -> str:
    return page.split(f'id="seg-{DEVICE}-{seq}"')[1].split("</tr>")[0]


def _flip_byte(ws: Workspace, seq: int, offset: int = 2000) -> None:
    path = ws.store.root / "segments" / segment_key(DEVICE, seq)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_an_untouched_stop_is_verified_intact_segment_by_segment_and_the_check_is_audited(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    page = _verify(ws)
    latest = _latest(ws.sessions)
    assert {seq: v.verdict for seq, v in latest.items()} == {1: "intact", 2: "intact", 3: "intact", 4: "intact", 5: "intact"}
    assert all(v.checked_by == "anna" for v in latest.values())
    assert "цела / intact" in page and "SHA-256, signature and chain verified" in _row_of(page, 4)
    with ws.sessions() as session:
        actions = [a.action for a in session.scalars(select(AccessAudit).order_by(AccessAudit.id))]
    assert "footage.verify" in actions


def test_a_changed_byte_in_a_stored_segment_is_broken_with_the_reason_and_the_others_stay_intact(ws: Workspace) -> None:
    _flip_byte(ws, 2)
    assert ws.login("anna") == 303
    page = _verify(ws)
    latest = _latest(ws.sessions)
    assert latest[2].verdict == "broken" and "differs from the signed manifest" in latest[2].reasons
    assert {latest[s].verdict for s in (1, 3, 4, 5)} == {"intact"}
    assert "нарушена / broken" in _row_of(page, 2)
    assert 'class="verdict verdict-broken"' in page, "the stop's verdict is the worst of its segments"


def test_an_altered_manifest_entry_fails_the_devices_signature(ws: Workspace) -> None:
    with ws.sessions() as session, session.begin():
        row = session.scalar(select(VideoSegment).where(VideoSegment.device_id == DEVICE, VideoSegment.seq == 3))
        assert row is not None
        row.entry_json = row.entry_json.replace('"frames":30', '"frames":31')
    with ws.sessions() as session, session.begin():
        check = verify_segments(session, ws.store, DEVICE, [3, 4], ws.clock.now(), "test")
    assert [c.verdict for c in check] == [Verdict.BROKEN, Verdict.BROKEN]
    assert "signature over the manifest entry does not verify" in check[0].text()
    assert "chain" in check[1].text(), "segment 4 names the hash of the real entry 3, not the altered one"


def test_segments_not_uploaded_make_the_stop_incomplete_never_intact(
    tmp_path: Path, server_sessions: sessionmaker[Session], shift: Shift
) -> None:
    workspace = make_workspace(tmp_path, server_sessions, shift, upload=False)
    ws = next(workspace)
    try:
        from .footage_support import upload_shift

        upload_shift(str(ws.client.base_url), shift, http=ws.client, only=[1, 2, 4, 5])
        assert ws.login("anna") == 303
        page = _verify(ws)
        latest = _latest(ws.sessions)
        assert 3 not in latest, "nothing stored to verify"
        assert latest[4].verdict == "incomplete" and "segment 3 is not stored" in latest[4].reasons
        assert {latest[s].verdict for s in (1, 2, 5)} == {"intact"}
        assert "recorded, not uploaded yet" in _row_of(page, 3)
        assert 'class="verdict verdict-incomplete"' in page
    finally:
        workspace.close()


def test_the_background_verifier_rechecks_on_its_schedule_and_finds_rot(ws: Workspace) -> None:
    verifier = BackgroundVerifier(ws.sessions, ws.store, interval_s=3600, batch=100, clock=ws.clock)
    assert verifier.tick() and verifier.found == {"intact": 5}
    assert not verifier.tick(), "not due again before its interval"
    _flip_byte(ws, 5, offset=1000)
    ws.clock.advance(3601)
    assert verifier.tick() and verifier.found["broken"] == 1
    with ws.sessions() as session:
        checks = session.scalars(select(SegmentVerification).where(SegmentVerification.seq == 5)
                                 .order_by(SegmentVerification.id)).all()  # fmt: skip
        assert [(c.verdict, c.checked_by) for c in checks] == [("intact", "background"), ("broken", "background")]
        assert session.execute(text("SELECT check_verdict FROM video_segment WHERE seq = 5")).scalar() == "broken"
    assert ws.login("olga") == 303, "an auditor reads the results"
    page = ws.client.get(PAGE).text
    assert "нарушена / broken" in _row_of(page, 5) and "background" in _row_of(page, 5)


def test_the_verifier_takes_the_segments_checked_longest_ago_first(ws: Workspace) -> None:
    verifier = BackgroundVerifier(ws.sessions, ws.store, interval_s=60, batch=2, clock=ws.clock)
    seen: list[set[int]] = []
    for _ in range(3):
        before = _latest(ws.sessions)
        verifier.tick()
        ws.clock.advance(61)
        after = _latest(ws.sessions)
        seen.append({s for s, v in after.items() if before.get(s) is None or before[s].id != v.id})
    assert seen == [{1, 2}, {3, 4}, {5, 1}], "never checked first, then the oldest check"
    _ = timedelta
