"""Playback of stored footage needs a logged-in, active supervisor; each play is written to the access audit
(chain of custody), which no one can alter afterwards."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from server.db.supervisors import AccessAudit
from server.review.accounts import disable_supervisor

from .conftest import DEVICE, NUMBER, Review

URL = f"/api/video/segments/{DEVICE}/11/content"


def _plays(sessions: sessionmaker[Session]) -> list[AccessAudit]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AccessAudit).where(AccessAudit.action == "footage.play").order_by(AccessAudit.id)
            )
        )


# Every test here runs on both stores: the filesystem folder and S3-compatible object storage.
pytestmark = pytest.mark.parametrize("review", ["filesystem", "s3"], indirect=True)

def test_anonymous_request_for_segment_content_is_refused(review: Review) -> None:
    response = review.client.get(URL, headers={"Range": "bytes=0-99"})
    assert response.status_code == 401 and "log in" in response.json()["detail"]
    review.client.cookies.set("pk_review", "made-up-token")
    assert review.client.get(URL).status_code == 401
    assert _plays(review.sessions) == []


def test_logged_in_supervisor_gets_206_with_the_exact_range(review: Review) -> None:
    assert review.login() == 303
    response = review.client.get(f"{URL}?protocol={NUMBER}", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-199/{len(review.mp4)}"
    assert response.content == review.mp4[100:200]
    whole = review.client.get(URL)
    assert whole.status_code == 200 and whole.content == review.mp4
    assert whole.content[4:8] == b"ftyp", "a real MP4"


def test_a_play_is_audited_once_per_session_and_segment_and_shown_on_the_protocol_page(
    review: Review,
) -> None:
    assert review.login() == 303
    for start in (0, 1000, 2000):  # a video element fetches one segment in several ranges
        assert (
            review.client.get(f"{URL}?protocol={NUMBER}", headers={"Range": f"bytes={start}-"}).status_code
            == 206
        )
    plays = _plays(review.sessions)
    assert [(p.supervisor_login, p.device_id, p.seq, p.protocol_number) for p in plays] == [
        ("anna", DEVICE, 11, NUMBER)
    ]
    review.clock.advance(11 * 60)
    review.client.get(URL, headers={"Range": "bytes=0-"})
    assert [p.protocol_number for p in _plays(review.sessions)] == [NUMBER, None]
    trail = review.client.get(f"/review/protocols/{NUMBER}").text.split("Access audit")[1]
    assert trail.count("footage.play") == 2, "plays opened without the protocol still belong to its footage"
    assert f"{DEVICE} #11" in trail and "protocol.view" in trail


def test_disabled_supervisor_can_no_longer_play(review: Review) -> None:
    assert review.login() == 303
    assert review.client.get(URL, headers={"Range": "bytes=0-9"}).status_code == 206
    with review.sessions() as session, session.begin():
        disable_supervisor(session, "anna", review.clock.now())
    assert review.client.get(URL, headers={"Range": "bytes=0-9"}).status_code == 401


def test_expired_session_can_no_longer_play(review: Review) -> None:
    assert review.login() == 303
    review.clock.advance(31 * 60)
    assert review.client.get(URL, headers={"Range": "bytes=0-9"}).status_code == 401


def test_segments_not_stored_or_malformed_are_not_served_and_not_audited(review: Review) -> None:
    assert review.login() == 303
    assert review.client.get(f"/api/video/segments/{DEVICE}/12/content").status_code == 404  # uploading
    assert review.client.get(f"/api/video/segments/{DEVICE}/99/content").status_code == 404
    assert review.client.get(f"/api/video/segments/{DEVICE}/x1/content").status_code == 400
    assert (
        review.client.get(f"{URL}?protocol=%27%20OR%201%3D1", headers={"Range": "bytes=0-9"}).status_code
        == 206
    )
    assert [p.protocol_number for p in _plays(review.sessions)] == [None], (
        "a bad protocol reference is dropped"
    )


def test_audit_rows_cannot_be_changed_or_deleted(review: Review) -> None:
    assert review.login() == 303
    review.client.get(f"/review/protocols/{NUMBER}")
    for statement in (
        "UPDATE review_access_audit SET supervisor_login = 'someone'",
        "DELETE FROM review_access_audit",
    ):
        with pytest.raises(DBAPIError, match="append-only"), review.sessions() as session, session.begin():
            session.execute(text(statement))
    with review.sessions() as session:
        assert [a.supervisor_login for a in session.scalars(select(AccessAudit))] == ["anna"]
