"""Complaint and appeal cases in the workspace (``server.review.cases``): the list, one case with its history
and files, and the forms that open a case, move it, attach the driver's files, and put or release a legal hold
on its footage (``POST /review/cases/{id}/hold``, ``POST /review/cases/{id}/hold/release``). Reading needs the review
permission, every change the cases permission (supervisors); each change is audited.

File uploads (``multipart/form-data``): the declared size is checked before anything is read (413 over the
largest limit), the type is taken from the content (``server.review.case_files``), and the file goes to the
video store as it arrives, hashed; where the store has Object Lock, locked for the case category's years
(``server.review.object_locks.keep_case_file``). A legal hold put or released is passed on to the store's
object legal holds at once (the retention run does it if the store is down then). While the store cannot be
reached, attaching and downloading a file answer 503 with Retry-After and a page that says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case as sql_case
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from core.ascii_digits import parse_digits
from server.db.base import transaction
from server.db.cases import Case, CaseEvent, CaseFile
from server.review import audit
from server.review.access import HandlingCases, Reviewing
from server.review.auth import Reviewer, client_of, now_of
from server.review.case_files import CaseFileRefused, checked, limit_of, safe_name
from server.review.cases import (
    OPEN_STATES,
    TRANSITIONS,
    CaseError,
    CaseState,
    Channel,
    NewCase,
    Outcome,
    add_file_record,
    holds_of,
    move_case,
    open_case,
    place_hold,
    release_hold,
)
from server.review.object_locks import case_file_deadline, follow_holds, keep_case_file
from server.review.query import bounded_query, form_model
from server.review.roles import Permission, allowed
from server.review.urls import case_url
from server.review.views import page, problem, refused_form
from server.routes.review import FormToken
from server.routes.video import service_for
from server.video.storage import BlobTooLarge

router = APIRouter(prefix="/review/cases", tags=["review"])
LIST_LIMIT = 200
MULTIPART_OVERHEAD = 64 * 1024


class CaseListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CaseState | None = Field(None, description="only cases in this state")


class NewCaseForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf: str = Field("", max_length=200)
    protocol_number: str = Field(min_length=1, max_length=32)
    channel: Channel
    reference: str = Field("", max_length=64)
    summary: str = Field("", max_length=10_000)


class MoveForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf: str = Field("", max_length=200)
    to_state: CaseState
    outcome: Outcome | None = None
    decision_text: str = Field("", max_length=10_000)


class HoldForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf: str = Field("", max_length=200)
    reason: str = Field("", max_length=10_000)


def _case_id(raw: str) -> int | None:
    number = parse_digits(raw)
    return number if number is not None and 0 < number < 2**31 else None


@router.get("", dependencies=[Depends(bounded_query)])
def case_list(request: Request, reviewer: Reviewing, query: Annotated[CaseListQuery, Query()]) -> Response:
    open_first = sql_case((Case.state.in_([s.value for s in OPEN_STATES]), 0), else_=1)
    stmt = select(Case).order_by(open_first, Case.updated_at.desc()).limit(LIST_LIMIT)
    if query.state is not None:
        stmt = stmt.where(Case.state == query.state.value)
    with request.app.state.sessions() as session:
        cases = list(session.scalars(stmt))
    return page(request, "review/cases.html", "Жалобы и обжалования / Complaints and appeals", reviewer,
                {"cases": cases, "state": query.state})  # fmt: skip


@router.post("")
async def case_open(
    request: Request, reviewer: HandlingCases, form: Annotated[NewCaseForm, Depends(form_model(NewCaseForm))]
) -> Response:
    refused = refused_form(request, reviewer, form.csrf)
    if refused is not None:
        return refused
    app = request.app

    def work() -> int:
        with transaction(app.state.sessions) as session:
            new = NewCase(form.protocol_number, form.channel, form.reference, form.summary)
            return open_case(session, new, reviewer, now_of(app)).id

    try:
        case_id = await run_in_threadpool(work)
    except CaseError as exc:
        return problem(request, 400, "Жалоба / Case", str(exc), reviewer)
    return RedirectResponse(case_url(case_id), status_code=303)


@router.get("/{case_id}", dependencies=[Depends(bounded_query)])
def case_view(case_id: str, request: Request, reviewer: Reviewing) -> Response:
    number = _case_id(case_id)
    if number is None:
        return problem(request, 400, "Жалоба / Case", "case number: expected 1 to 2^31 in ASCII digits", reviewer)
    app = request.app
    with transaction(app.state.sessions) as session:
        case = session.get(Case, number)
        if case is None:
            return problem(request, 404, "Жалоба / Case", f"жалоба {number} не найдена / no case {number}", reviewer)
        events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == number).order_by(CaseEvent.id)))
        files = list(session.scalars(select(CaseFile).where(CaseFile.case_id == number).order_by(CaseFile.id)))
        holds = holds_of(session, number)
        audit.record(session, reviewer, "case.view", now_of(app), protocol_number=case.protocol_number,
                     client=client_of(request), detail=f"case {number}")  # fmt: skip
    context: dict[str, Any] = {
        "case": case,
        "events": events,
        "files": files,
        "holds": holds,
        "holding": any(h.released_at is None for h in holds),
        "next_states": sorted(s.value for s in TRANSITIONS[CaseState(case.state)]),
        "can_change": allowed(reviewer.role, Permission.CASES),
        "max_video_mb": app.state.config.review.case_file_max_bytes // (1024 * 1024),
    }
    return page(request, "review/case.html", f"Жалоба / Case № {number}", reviewer, context)


@router.post("/{case_id}/state")
async def case_move(
    case_id: str, request: Request, reviewer: HandlingCases, form: Annotated[MoveForm, Depends(form_model(MoveForm))]
) -> Response:
    return await _change_case(case_id, request, reviewer, form.csrf, "Жалоба / Case", "",
                              lambda session, number, at: move_case(session, number, form.to_state, reviewer, at,
                                                                    form.outcome, form.decision_text))  # fmt: skip


@router.post("/{case_id}/hold")
async def case_hold(
    case_id: str, request: Request, reviewer: HandlingCases, form: Annotated[HoldForm, Depends(form_model(HoldForm))]
) -> Response:
    return await _change_case(case_id, request, reviewer, form.csrf, "Удержание / Legal hold", "#hold",
                              lambda session, number, at: place_hold(session, number, reviewer, at, form.reason),
                              holds_changed=True)  # fmt: skip


@router.post("/{case_id}/hold/release")
async def case_hold_release(
    case_id: str, request: Request, reviewer: HandlingCases, form: Annotated[FormToken, Depends(form_model(FormToken))]
) -> Response:
    return await _change_case(case_id, request, reviewer, form.csrf, "Удержание / Legal hold", "#hold",
                              lambda session, number, at: release_hold(session, number, reviewer, at),
                              holds_changed=True)  # fmt: skip


async def _change_case(case_id: str, request: Request, reviewer: Reviewer, csrf: str, title: str, anchor: str,
                       change: Callable[[Session, int, datetime], object], holds_changed: bool = False) -> Response:  # fmt: skip
    """A change of one case from a form: the token checked, the change made in one transaction (409 with the
    reason if the case refuses it), the store's legal holds made to follow when ``holds_changed``, then back
    to the case page (at ``anchor``)."""
    refused = refused_form(request, reviewer, csrf)
    if refused is not None:
        return refused
    number = _case_id(case_id)
    if number is None:
        return problem(request, 400, "Жалоба / Case", "case number: expected 1 to 2^31 in ASCII digits", reviewer)
    app = request.app

    def work() -> None:
        with transaction(app.state.sessions) as session:
            change(session, number, now_of(app))
        if holds_changed:
            with app.state.sessions() as session:
                follow_holds(session, service_for(app).store, reviewer, lambda: now_of(app))

    try:
        await run_in_threadpool(work)
    except CaseError as exc:
        return problem(request, 409, title, str(exc), reviewer)
    return RedirectResponse(f"{case_url(number)}{anchor}", status_code=303)


@router.post(
    "/{case_id}/files",
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
        "csrf": {"type": "string"}, "file": {"type": "string", "format": "binary"}}}}}}},
)  # fmt: skip
async def case_file_add(case_id: str, request: Request, reviewer: HandlingCases) -> Response:
    number = _case_id(case_id)
    if number is None:
        return problem(request, 400, "Жалоба / Case", "case number: expected 1 to 2^31 in ASCII digits", reviewer)
    config = request.app.state.config
    largest = max(config.review.case_file_max_bytes, 25 * 1024 * 1024)
    length = parse_digits(request.headers.get("content-length", ""))
    if length is None:
        return problem(request, 411, "Файл / File", "send the file with a Content-Length", reviewer)
    if length > largest + MULTIPART_OVERHEAD:
        return problem(request, 413, "Файл / File", f"файл больше {largest} байт / the file is over {largest} bytes", reviewer)
    if request.headers.get("content-type", "").split(";")[0].strip() != "multipart/form-data":
        return problem(request, 400, "Файл / File", "expected multipart/form-data", reviewer)
    form = await request.form(max_files=1, max_fields=4)
    try:
        token = form.get("csrf")
        refused = refused_form(request, reviewer, token if isinstance(token, str) else "")
        if refused is not None:
            return refused
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return problem(request, 400, "Файл / File", "file: choose a file to attach", reviewer)

        def pieces() -> Any:
            while data := upload.file.read(1 << 20):
                yield data

        try:
            stream = checked(pieces(), config.review.case_file_max_bytes)
        except CaseFileRefused as exc:
            return problem(request, 415, "Файл / File", str(exc), reviewer)
        store = service_for(request.app).store
        limit = limit_of(stream.kind, config.review.case_file_max_bytes)

        def save() -> int:
            now = now_of(request.app)
            until = case_file_deadline(config.retention.case_years, now, now)
            stored, locked_until = keep_case_file(store, number, stream.pieces, limit, until)
            with transaction(request.app.state.sessions) as session:
                case = session.get(Case, number, with_for_update=True)
                if case is None:
                    raise CaseError(f"no case {number}")
                existing = session.scalar(select(CaseFile).where(CaseFile.storage_key == stored.key))
                if existing is not None:
                    raise CaseError(f"this file is already attached (sha256 {stored.sha256})")
                add_file_record(session, case, CaseFile(
                    case_id=number, file_name=safe_name(upload.filename or ""), media_type=stream.kind.media_type,
                    size=stored.size, sha256=stored.sha256, storage_key=stored.key, added_at=now, added_by=reviewer.login,
                    store_locked_until=locked_until), reviewer, now)  # fmt: skip
            return stored.size

        try:
            await run_in_threadpool(save)
        except BlobTooLarge:
            return problem(request, 413, "Файл / File",
                           f"{stream.kind.words}: не больше {limit} байт / at most {limit} bytes", reviewer)  # fmt: skip
        except CaseError as exc:
            return problem(request, 409, "Файл / File", str(exc), reviewer)
    finally:
        await form.close()
    return RedirectResponse(case_url(number), status_code=303)


@router.get("/{case_id}/files/{file_id}")
def case_file_get(case_id: str, file_id: str, request: Request, reviewer: Reviewing) -> Response:
    number, fid = _case_id(case_id), _case_id(file_id)
    if number is None or fid is None:
        return problem(request, 400, "Файл / File", "case and file numbers: ASCII digits", reviewer)
    app = request.app
    store = service_for(app).store
    with transaction(app.state.sessions) as session:
        found = session.get(CaseFile, fid)
        if found is None or found.case_id != number:
            return problem(request, 404, "Файл / File", f"no file {fid} in case {number}", reviewer)
        key, media_type, name = found.storage_key, found.media_type, found.file_name
        pieces = store.read_blob(key)
        try:  # the first piece is read before anything is recorded: a store that is down answers 503
            first = next(pieces, b"")
        except FileNotFoundError:
            return problem(request, 404, "Файл / File", "the stored file is missing", reviewer)
        case = session.get(Case, number)
        audit.record(session, reviewer, "case.file_view", now_of(app),
                     protocol_number=case.protocol_number if case else None, client=client_of(request),
                     detail=f"case {number} file {fid} sha256 {found.sha256}")  # fmt: skip
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:100] or "file"
    headers = {"Content-Disposition": f'attachment; filename="{safe}"'}

    def chunks() -> Iterator[bytes]:
        yield first
        yield from pieces

    return StreamingResponse(iterate_in_threadpool(chunks()), media_type=media_type, headers=headers)
