"""While the video store (a real SeaweedFS, stopped in the test) cannot be reached, the workspace's reads of
footage and case files answer 503 with Retry-After, a page that says the store is unavailable, and record
nothing (no verification, no export or file view in the audit); the stop page, which reads no footage, still
opens; once the store is back every one of them works again."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import func, select, update

from server.db.cases import CaseFile
from server.db.supervisors import AccessAudit
from server.db.video import SegmentVerification, VideoSegment
from server.review.urls import content_url, playlist_url
from server.review.views import STORE_RETRY_AFTER_S
from tests.s3_support import SeaweedServer

from .conftest import DEVICE, NUMBER, Workspace
from .footage_support import T

PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"
UNAVAILABLE = "the video store is unavailable right now"


def _count(ws: Workspace, what: object) -> int:
    with ws.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)  # type: ignore[arg-type]


def _audits(ws: Workspace, action: str) -> int:
    with ws.sessions() as session:
        return int(session.scalar(select(func.count()).where(AccessAudit.action == action)) or 0)


def _is_store_down(response: object, page: bool) -> None:
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", {})
    text = getattr(response, "text", "")
    assert status == 503, (status, text[:300])
    assert headers["retry-after"] == str(STORE_RETRY_AFTER_S)
    if page:
        assert "text/html" in headers["content-type"] and UNAVAILABLE in text
        assert "Хранилище недоступно / Video store unavailable" in text
    else:
        assert "video store unavailable" in text


def test_footage_and_case_files_answer_503_with_retry_after_while_the_store_is_down(
    own_store_ws: tuple[Workspace, SeaweedServer],
) -> None:
    ws, weed = own_store_ws
    assert ws.login("anna") == 303
    case_url = f"/review/cases/{ws.open_case()}"
    letter = b"%PDF-1.4\n" + b"\x03" * 2000
    attached = ws.client.post(f"{case_url}/files", data={"csrf": ws.csrf(case_url)},
                              files={"file": ("letter.pdf", letter, "application/pdf")}, follow_redirects=False)  # fmt: skip
    assert attached.status_code == 303
    with ws.sessions() as session, session.begin():
        file_id = session.scalars(select(CaseFile.id)).one()
        session.execute(update(VideoSegment).values(layout_json=None))  # the playlist must read the objects
    playlist = playlist_url(DEVICE, T - timedelta(minutes=1), T + timedelta(minutes=3), NUMBER)
    token = ws.csrf(PAGE)
    verifications, exports, views = _count(ws, SegmentVerification), _audits(ws, "evidence.export"), _audits(
        ws, "case.file_view")  # fmt: skip

    weed.stop()
    _is_store_down(ws.client.get(playlist), page=False)
    _is_store_down(ws.client.get(content_url(DEVICE, 1, NUMBER), headers={"Range": "bytes=0-99"}), page=False)
    _is_store_down(ws.client.post(f"{PAGE}/verify", data={"csrf": token}, follow_redirects=False), page=True)
    _is_store_down(ws.client.post(f"{PAGE}/export", data={"csrf": token}, follow_redirects=False), page=True)
    _is_store_down(ws.client.get(f"{case_url}/files/{file_id}"), page=True)
    again = ws.client.post(f"{case_url}/files", data={"csrf": token},
                           files={"file": ("photo.pdf", b"%PDF-1.4\n" + b"\x04" * 100, "application/pdf")})  # fmt: skip
    _is_store_down(again, page=True)
    assert (_count(ws, SegmentVerification), _audits(ws, "evidence.export"), _audits(ws, "case.file_view")) == (
        verifications, exports, views), "nothing is recorded of what was not done"  # fmt: skip
    stop = ws.client.get(PAGE)
    assert stop.status_code == 200, "the stop page reads no footage"

    weed.start()
    listed = ws.client.get(playlist)
    deadline = time.monotonic() + 30
    while listed.status_code == 503 and time.monotonic() < deadline:  # a store just back may still fail a call
        _is_store_down(listed, page=False)
        time.sleep(float(listed.headers["retry-after"]) / 10)
        listed = ws.client.get(playlist)
    assert listed.status_code == 200 and len(re.findall(r"#EXT-X-MAP", listed.text)) == 5, listed.text
    assert ws.client.get(content_url(DEVICE, 1, NUMBER), headers={"Range": "bytes=0-99"}).status_code == 206
    exported = ws.client.post(f"{PAGE}/export", data={"csrf": ws.csrf(PAGE)})
    assert exported.status_code == 200 and exported.content[:2] == b"PK"
    got = ws.client.get(f"{case_url}/files/{file_id}")
    assert got.status_code == 200 and got.content == letter
