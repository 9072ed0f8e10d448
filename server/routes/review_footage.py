"""The stop's footage in the workspace: the HLS playlist the page's player plays (``server.video.playlist``),
"Verify" (``server.video.integrity``), and the evidence package (``server.evidence.export``), each for a
logged-in account whose role may (``server.review.access``); verifications and exports are audited.

- ``GET /review/api/footage/{device}.m3u8?start=&end=&protocol=``: 401 without a session, 400 for a bad
  device id or range (named), at most ``MAX_PLAYLIST_HOURS``;
- ``POST /review/protocols/{number}/verify`` (form with the page's token): verifies every segment of the
  stop's footage now and shows the page again at its integrity section;
- ``POST /review/protocols/{number}/export`` (form with the page's token): the ZIP, streamed.

While the video store cannot be reached, each answers 503 with Retry-After (a page that says so for the
forms, ``server.review.views.store_unavailable``) and records nothing: no verification, no export in the
audit. An export whose store fails after its first bytes were sent can only be cut off.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from core.manifest import DEVICE_ID_PATTERN
from server.db.base import transaction
from server.db.protocols import Protocol
from server.db.sync import Bookmark
from server.evidence.export import ExportError, ExportPlan, plan_for_protocol, stream_package
from server.review import audit
from server.review.access import Exporting, Reviewing, Verifying
from server.review.auth import Reviewer, client_of, now_of
from server.review.footage import stop_window
from server.review.query import bounded_query, form_model
from server.review.urls import content_url, protocol_url
from server.review.views import problem, refused_form
from server.routes.review import FormToken, valid_protocol_number
from server.routes.video import service_for
from server.video.integrity import verify_segments
from server.video.playlist import make_playlist, stored_layouts

router = APIRouter(tags=["review"])
MAX_PLAYLIST_HOURS = 24


class PlaylistQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime = Field(description="first moment, ISO 8601 with offset")
    end: AwareDatetime = Field(description="last moment, ISO 8601 with offset")
    protocol: str = Field("", max_length=32, description="the stop the footage is watched for (audit)")

    @model_validator(mode="after")
    def _range(self) -> PlaylistQuery:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(hours=MAX_PLAYLIST_HOURS):
            raise ValueError(f"at most {MAX_PLAYLIST_HOURS} hours at once")
        if "\x00" in self.protocol:
            raise ValueError("protocol: no NUL")
        return self


@router.get("/review/api/footage/{device_id}.m3u8", dependencies=[Depends(bounded_query)])
def footage_playlist(
    device_id: str, request: Request, reviewer: Reviewing, query: Annotated[PlaylistQuery, Query()]
) -> Response:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        return Response(f"device id {device_id[:80]!r} is malformed\n", status_code=400, media_type="text/plain")
    store = service_for(request.app).store
    with transaction(request.app.state.sessions) as session:
        segments, _refused = stored_layouts(session, store, device_id, query.start, query.end)  # a store down: 503
    text = make_playlist(segments, lambda d, s: content_url(d, s, query.protocol))
    return Response(text, media_type="application/vnd.apple.mpegurl")


def _refused(request: Request, reviewer: Reviewer, form: FormToken, number: str) -> Response | None:
    """A stale or foreign form (403), or a number no protocol can have (400); else None."""
    refused = refused_form(request, reviewer, form.csrf)
    if refused is None and not valid_protocol_number(number):
        refused = problem(request, 400, "Протокол / Protocol", "protocol number: 1-32 characters, no NUL", reviewer)
    return refused


@router.post("/review/protocols/{number:anytext}/verify")
async def verify_stop(
    number: str, request: Request, reviewer: Verifying, form: Annotated[FormToken, Depends(form_model(FormToken))]
) -> Response:
    refused = _refused(request, reviewer, form, number)
    if refused is not None:
        return refused
    found = await run_in_threadpool(_verify, request, reviewer, number)
    if not found:
        return problem(request, 404, "Протокол / Protocol", f"no protocol {number}", reviewer)
    return RedirectResponse(f"{protocol_url(number)}#integrity", status_code=303)


def _verify(request: Request, reviewer: Reviewer, number: str) -> bool:
    app = request.app
    store = service_for(app).store
    now = now_of(app)
    with transaction(app.state.sessions) as session:
        protocol = session.get(Protocol, number)
        if protocol is None:
            return False
        bookmarks = list(session.scalars(select(Bookmark).where(Bookmark.protocol_number == number)))
        counts: dict[str, int] = {}
        from server.db.sync import SegmentMeta
        from server.db.video import VideoSegment

        for device_id, iv, _ in stop_window(protocol, bookmarks):
            seqs = set(session.scalars(select(VideoSegment.seq).where(
                VideoSegment.device_id == device_id, VideoSegment.started_at < iv.end, VideoSegment.ended_at > iv.start)))  # fmt: skip
            seqs |= set(session.scalars(select(SegmentMeta.seq).where(
                SegmentMeta.device_id == device_id, SegmentMeta.started_at < iv.end, SegmentMeta.ended_at > iv.start)))  # fmt: skip
            for check in verify_segments(session, store, device_id, sorted(seqs), now, reviewer.login):
                counts[check.verdict.value] = counts.get(check.verdict.value, 0) + 1
        audit.record(
            session, reviewer, "footage.verify", now, protocol_number=number, client=client_of(request),
            detail=", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )  # fmt: skip
    return True


@router.post("/review/protocols/{number:anytext}/export")
async def export_stop(
    number: str, request: Request, reviewer: Exporting, form: Annotated[FormToken, Depends(form_model(FormToken))]
) -> Response:
    refused = _refused(request, reviewer, form, number)
    if refused is not None:
        return refused
    app = request.app
    config = app.state.config
    now = now_of(app)

    def plan() -> ExportPlan:
        with transaction(app.state.sessions) as session:
            audit.record(session, reviewer, "evidence.export", now, protocol_number=number, client=client_of(request),
                         detail="evidence package (browser)")  # fmt: skip
            made = plan_for_protocol(session, number, reviewer.login, now, config.http.public_url,
                                     config.review.timezone)  # fmt: skip
            if made.segments:  # the store answers before anything is recorded or sent (else 503)
                store.committed_size(made.segments[0].storage_key)
            return made

    store = service_for(app).store
    try:
        made = await run_in_threadpool(plan)
    except ExportError as exc:
        return problem(request, 404, "Экспорт / Export", str(exc), reviewer)
    headers = {"Content-Disposition": f'attachment; filename="{made.file_name}"'}
    return StreamingResponse(stream_package(made, store), media_type="application/zip", headers=headers)
