"""Complaint and appeal cases: a case on a protocol through received → under review → decided → closed (and
no other way), the driver's files checked by content and size and kept hashed in the video store, every
change audited, and the protocol marked appealed while a case is open (what the fine lifecycle asks)."""

from __future__ import annotations

import hashlib
import io
import re
from urllib.parse import quote

import pytest
from PIL import Image
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from server.db.cases import Case, CaseEvent, CaseFile
from server.db.supervisors import AccessAudit
from server.review.audit import Operator
from server.review.case_files import sniff
from server.review.cases import (
    CaseError,
    CaseState,
    Channel,
    NewCase,
    Outcome,
    move_case,
    open_case,
    protocol_appeal_open,
)

from .conftest import NUMBER, Workspace

PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"


def _open(ws: Workspace, channel: str = "erap_appeal", reference: str = "ERAP-2026-77") -> int:
    response = ws.client.post("/review/cases", data={
        "csrf": ws.csrf(PAGE), "protocol_number": NUMBER, "channel": channel, "reference": reference,
        "summary": "Водитель оспаривает скорость / the driver disputes the speed"}, follow_redirects=False)  # fmt: skip
    assert response.status_code == 303, response.text[:400]
    found = re.fullmatch(r"/review/cases/(\d+)", response.headers["location"])
    assert found is not None
    return int(found.group(1))


def _move(ws: Workspace, case_id: int, to: str, **extra: str) -> int:
    url = f"/review/cases/{case_id}"
    data = {"csrf": ws.csrf(url), "to_state": to, **extra}
    return ws.client.post(f"{url}/state", data=data, follow_redirects=False).status_code


def _appealed(ws: Workspace) -> bool:
    with ws.sessions() as session:
        return protocol_appeal_open(session, NUMBER)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


def test_a_case_goes_through_its_states_with_a_decision_and_every_change_is_audited(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    assert not _appealed(ws)
    case_id = _open(ws)
    assert _appealed(ws), "a case that is not closed marks the protocol appealed"
    assert "Обжалуется / Under appeal" in ws.client.get(PAGE).text
    assert _move(ws, case_id, "closed") == 409, "received cannot jump to closed"
    assert _move(ws, case_id, "under_review") == 303
    assert _move(ws, case_id, "decided") == 409, "a decision needs its outcome and text"
    assert _move(ws, case_id, "decided", outcome="partly_upheld", decision_text="") == 409
    assert _move(ws, case_id, "decided", outcome="partly_upheld", decision_text="Скорость 65, а не 72 км/ч") == 303
    assert _appealed(ws), "decided but not closed: still appealed"
    assert _move(ws, case_id, "closed") == 303
    assert not _appealed(ws)
    assert _move(ws, case_id, "under_review") == 409, "closed is final"
    page = ws.client.get(f"/review/cases/{case_id}").text
    assert "удовлетворена частично / partly upheld" in page and "Скорость 65, а не 72 км/ч" in page
    assert 'data-state="closed"' in page
    with ws.sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.closed_at is not None and case.reference == "ERAP-2026-77"
        history = [(e.action, e.from_state, e.to_state) for e in session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id))]  # fmt: skip
        audited = [a.action for a in session.scalars(select(AccessAudit).where(AccessAudit.action.like("case.%"))
                                                     .order_by(AccessAudit.id))]  # fmt: skip
    assert history == [
        ("opened", None, "received"), ("moved", "received", "under_review"),
        ("moved", "under_review", "decided"), ("moved", "decided", "closed"),
    ]  # fmt: skip
    assert [a for a in audited if a != "case.view"] == ["case.opened", "case.moved", "case.moved", "case.moved"]


def test_the_transition_table_refuses_every_other_move(ws: Workspace) -> None:
    who = Operator("cli:test")
    with ws.sessions() as session, session.begin():
        case = open_case(session, NewCase(NUMBER, Channel.WRITTEN, "", "письмо водителя"), who, ws.clock.now())
        for wrong in (CaseState.DECIDED, CaseState.CLOSED, CaseState.RECEIVED):
            with pytest.raises(CaseError, match="cannot move"):
                move_case(session, case.id, wrong, who, ws.clock.now(), Outcome.UPHELD, "x")
        with pytest.raises(CaseError, match="outcome and text go with the decision"):
            move_case(session, case.id, CaseState.UNDER_REVIEW, who, ws.clock.now(), Outcome.UPHELD)
        with pytest.raises(CaseError, match="no protocol"):
            open_case(session, NewCase("KZ-NONE", Channel.IN_PERSON, "", "x"), who, ws.clock.now())
        with pytest.raises(CaseError, match="ERAP appeal needs its appeal number"):
            open_case(session, NewCase(NUMBER, Channel.ERAP_APPEAL, " ", "x"), who, ws.clock.now())


def test_the_drivers_files_are_typed_by_content_limited_in_size_stored_and_hashed(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    case_id = _open(ws, "written", "№ 15/2026")
    url = f"/review/cases/{case_id}"

    def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> int:
        response = ws.client.post(f"{url}/files", data={"csrf": ws.csrf(url)},
                                  files={"file": (name, data, content_type)}, follow_redirects=False)  # fmt: skip
        return response.status_code

    photo = _jpeg()
    assert upload("../../photo of the sign.jpg", photo, "image/jpeg") == 303
    assert upload("again.jpg", photo) == 409, "the same file twice is one file"
    assert upload("script.jpg", b"MZ\x90\x00" + b"\x00" * 200, "image/jpeg") == 415, "the name and type say JPEG, the bytes do not"
    assert upload("empty.mp4", b"") == 415
    big_video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (4 * 1024 * 1024 + 1)
    assert upload("dashcam.mp4", big_video, "video/mp4") == 413, "over the configured video limit"
    small_video = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 5000
    assert upload("dashcam.mp4", small_video, "video/mp4") == 303
    with ws.sessions() as session:
        files = list(session.scalars(select(CaseFile).where(CaseFile.case_id == case_id).order_by(CaseFile.id)))
    assert [(f.file_name, f.media_type, f.size) for f in files] == [
        ("photo of the sign.jpg", "image/jpeg", len(photo)), ("dashcam.mp4", "video/mp4", len(small_video)),
    ]  # fmt: skip
    assert files[0].sha256 == hashlib.sha256(photo).hexdigest()
    assert (ws.store.root / "blobs" / files[0].storage_key).read_bytes() == photo
    got = ws.client.get(f"{url}/files/{files[0].id}")
    assert got.status_code == 200 and got.content == photo and got.headers["content-type"] == "image/jpeg"
    assert sorted(p.name for p in (ws.store.root / "blobs" / "incoming").iterdir()) == [], "nothing half-written"
    _move(ws, case_id, "under_review")
    _move(ws, case_id, "decided", outcome="rejected", decision_text="Нарушение подтверждено видео")
    _move(ws, case_id, "closed")
    assert upload("late.jpg", _jpeg()[:-2] + b"\xff\xd9") == 409, "a closed case takes no more files"


def test_case_history_is_append_only(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    _open(ws)
    for statement in ("UPDATE review_case_event SET text = 'x'", "DELETE FROM review_case_event"):
        with pytest.raises(DBAPIError, match="append-only"), ws.sessions() as session, session.begin():
            session.execute(text(statement))


@pytest.mark.parametrize(
    ("head", "media"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00", "video/quicktime"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00", "video/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "video/webm"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"MZ\x90\x00", None),
        (b"<html><body>", None),
        (b"GIF89a", None),
    ],
)
def test_file_types_are_judged_by_their_first_bytes(head: bytes, media: str | None) -> None:
    kind = sniff(head)
    assert (kind.media_type if kind else None) == media
