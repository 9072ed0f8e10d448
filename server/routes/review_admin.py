"""The workspace's pages for the fleet, the access audit and the accounts:

- ``GET /review/fleet``: one row per device, what needs attention first (``server.review.fleet``), and the
  storage used per retention category (``server.review.retention``);
- ``GET /review/audit``: the latest access-audit rows; ``POST /review/audit/verify`` walks the whole hash
  chain (``server.review.audit_chain``) and shows its verdict (auditors);
- ``GET /review/accounts``: every account with its role (admins).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from server.db.base import transaction
from server.db.supervisors import AccessAudit, Supervisor
from server.review import audit
from server.review.access import Auditing, ManagingAccounts, WatchingFleet
from server.review.audit_chain import ChainReport, verify_chain
from server.review.auth import client_of, now_of
from server.review.fleet import fleet_rows
from server.review.query import bounded_query, form_model
from server.review.retention import storage_use
from server.review.roles import ROLE_LABELS, Role
from server.review.views import page, refused_form
from server.routes.review import FormToken

router = APIRouter(prefix="/review", tags=["review"])


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field("", max_length=64, description="only this account's rows")
    limit: int = Field(200, ge=1, le=2000)


@router.get("/fleet", dependencies=[Depends(bounded_query)])
def fleet(request: Request, reviewer: WatchingFleet) -> Response:
    app = request.app
    now = now_of(app)
    with request.app.state.sessions() as session:
        rows = fleet_rows(session, now)
        storage = storage_use(session)
    return page(request, "review/fleet.html", "Устройства / Fleet", reviewer,
                {"rows": rows, "now": now, "storage": storage})  # fmt: skip


@router.get("/audit", dependencies=[Depends(bounded_query)])
def audit_page(request: Request, reviewer: Auditing, query: Annotated[AuditQuery, Query()]) -> Response:
    stmt = select(AccessAudit).order_by(AccessAudit.id.desc()).limit(query.limit)
    if query.login:
        stmt = stmt.where(AccessAudit.supervisor_login == query.login)
    with request.app.state.sessions() as session:
        rows = list(session.scalars(stmt))
    return page(request, "review/audit.html", "Журнал доступа / Access audit", reviewer,
                {"rows": rows, "report": None, "query": query})  # fmt: skip


@router.post("/audit/verify")
async def audit_verify(
    request: Request, reviewer: Auditing, form: Annotated[FormToken, Depends(form_model(FormToken))]
) -> Response:
    refused = refused_form(request, reviewer, form.csrf)
    if refused is not None:
        return refused
    app = request.app

    def work() -> tuple[ChainReport, list[AccessAudit]]:
        with app.state.sessions() as session:
            report = verify_chain(session)
        with transaction(app.state.sessions) as session:
            audit.record(session, reviewer, "audit.verify", now_of(app), client=client_of(request), detail=report.text())
            rows = list(session.scalars(select(AccessAudit).order_by(AccessAudit.id.desc()).limit(200)))
        return report, rows

    report, rows = await run_in_threadpool(work)
    return page(request, "review/audit.html", "Журнал доступа / Access audit", reviewer,
                {"rows": rows, "report": report, "query": AuditQuery()})  # fmt: skip


@router.get("/accounts", dependencies=[Depends(bounded_query)])
def accounts(request: Request, reviewer: ManagingAccounts) -> Response:
    with request.app.state.sessions() as session:
        people = list(session.scalars(select(Supervisor).order_by(Supervisor.login)))
    labels = {r.value: ROLE_LABELS[r] for r in Role}
    return page(request, "review/accounts.html", "Учётные записи / Accounts", reviewer,
                {"people": people, "labels": labels})  # fmt: skip
