"""The fine lifecycle's back-office pages under ``/fines``, behind the supervisor login of the review UI
(``server.review.auth``: the same session cookie; without one, 303 to its login page).

- ``/fines``: fines by state with counts; ``/fines/list?jurisdiction=&state=&page=``;
- ``/fines/fine/{number}``: one fine's whole history;
- ``/fines/bailiff``, ``/fines/bailiff/{id}`` (printable), ``/fines/bailiff/{id}.json`` (signed documents);
- ``/fines/reconciliation``, ``/fines/reconciliation/{id}``;
- ``/fines/publications`` and ``/fines/publications.csv``.

Every parameter is validated (422 naming it); unknown things are 404.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.fines.fine_state import FineState
from core.sync.signing import b64e
from server.fines import enforcement, pages
from server.fines.publication_list import publication_csv
from server.fines.runtime import runtime_of
from server.review.auth import Reviewer, current_reviewer

router = APIRouter(prefix="/fines", tags=["fines pages"], include_in_schema=False)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATES = "|".join(s.value for s in FineState)
CSS = resources.files("server.fines").joinpath("static/fines.css").read_bytes()


def supervisor(request: Request) -> Reviewer:
    reviewer = current_reviewer(request)
    if reviewer is None:
        raise HTTPException(303, "log in first", headers={"Location": "/review/login", **HEADERS})
    return reviewer


Supervisor = Annotated[Reviewer, Depends(supervisor)]
Number = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9./_-]{0,63}$")]


def _page(template: str, reviewer: Reviewer, context: dict[str, Any]) -> HTMLResponse:
    return HTMLResponse(pages.render(template, reviewer=reviewer, **context), headers=HEADERS)


@router.get("/static/fines.css")
def css() -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("", response_class=HTMLResponse)
def overview(request: Request, reviewer: Supervisor) -> HTMLResponse:
    with request.app.state.sessions() as session:
        return _page("overview.html", reviewer, pages.overview(session))


@router.get("/list", response_class=HTMLResponse)
def fine_list(
    request: Request,
    reviewer: Supervisor,
    jurisdiction: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    state: Annotated[str | None, Query(pattern=rf"^({STATES})$")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    q = pages.ListQuery(jurisdiction, state, page)
    with request.app.state.sessions() as session:
        context = pages.fine_list(session, q)

    def page_url(n: int) -> str:
        parts = [f"jurisdiction={jurisdiction}"] if jurisdiction else []
        parts += [f"state={state}"] if state else []
        return "/fines/list?" + "&".join([*parts, f"page={n}"])

    return _page("list.html", reviewer, {**context, "page_url": page_url})


@router.get("/fine/{number}", response_class=HTMLResponse)
def fine(request: Request, reviewer: Supervisor, number: Number) -> HTMLResponse:
    with request.app.state.sessions() as session:
        context = pages.fine_history(session, number)
    if context is None:
        raise HTTPException(404, f"no fine {number}")
    return _page("fine.html", reviewer, context)


@router.get("/bailiff", response_class=HTMLResponse)
def batches(request: Request, reviewer: Supervisor) -> HTMLResponse:
    with request.app.state.sessions() as session:
        return _page("batches.html", reviewer, pages.batches(session))


@router.get("/bailiff/{batch_id}.json")
def batch_json(request: Request, reviewer: Supervisor, batch_id: Annotated[int, Path(ge=1)]) -> JSONResponse:
    signer = runtime_of(request.app).work.signer
    with request.app.state.sessions() as session:
        found = enforcement.batch_export(session, batch_id, b64e(signer.public_raw()))
    if found is None:
        raise HTTPException(404, f"no hand-over batch {batch_id}")
    return JSONResponse(
        found, headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.json"'}
    )


@router.get("/bailiff/{batch_id}", response_class=HTMLResponse)
def batch(request: Request, reviewer: Supervisor, batch_id: Annotated[int, Path(ge=1)]) -> HTMLResponse:
    signer = runtime_of(request.app).work.signer
    with request.app.state.sessions() as session:
        context = pages.batch(session, batch_id)
    if context is None:
        raise HTTPException(404, f"no hand-over batch {batch_id}")
    return _page(
        "batch.html",
        reviewer,
        {**context, "public_key": b64e(signer.public_raw()), "kid": context["kid"] or signer.kid},
    )


@router.get("/reconciliation", response_class=HTMLResponse)
def reports(request: Request, reviewer: Supervisor) -> HTMLResponse:
    with request.app.state.sessions() as session:
        return _page("reports.html", reviewer, pages.reports(session))


@router.get("/reconciliation/{report_id}", response_class=HTMLResponse)
def report(request: Request, reviewer: Supervisor, report_id: Annotated[int, Path(ge=1)]) -> HTMLResponse:
    with request.app.state.sessions() as session:
        context = pages.report(session, report_id)
    if context is None:
        raise HTTPException(404, f"no reconciliation report {report_id}")
    return _page("report.html", reviewer, context)


@router.get("/publications", response_class=HTMLResponse)
def publications(
    request: Request,
    reviewer: Supervisor,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
) -> HTMLResponse:
    with request.app.state.sessions() as session:
        return _page("publications.html", reviewer, pages.publication_page(session, since, until))


@router.get("/publications.csv")
def publications_csv(
    request: Request,
    reviewer: Supervisor,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    with request.app.state.sessions() as session:
        text = publication_csv(session, since, until)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="publication.csv"', **HEADERS})  # fmt: skip
