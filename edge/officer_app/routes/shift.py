"""This shift: the officer's stops of the day with their state (open, paid, declined, in doubt), newest first;
any one can be opened again to go on with it."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from edge.db.protocols import Protocol
from edge.officer_app.guards import Officer, app_of, signed_in
from edge.officer_app.panels import shift_states
from edge.officer_app.routes.stops import stop_url

router = APIRouter()


@router.get("/shift", response_class=HTMLResponse)
def shift(request: Request, officer: Annotated[Officer, Depends(signed_in)]) -> HTMLResponse:
    app = app_of(request)
    t = officer.t
    local_now = t.local(app.clock.now())
    # the shift: since the start of the local day, or the last 12 hours when that reaches further back
    start = min(datetime.combine(local_now.date(), time(), local_now.tzinfo), local_now - timedelta(hours=12))
    with app.sessions() as s:
        protocols = list(
            s.scalars(
                select(Protocol)
                .where(Protocol.officer_badge == officer.badge, Protocol.created_at >= start)
                .order_by(Protocol.created_at.desc())
                .limit(500)
            )
        )
        states = shift_states(s, protocols)
    rows = [
        {"number": p.number, "at": t.time(p.created_at), "driver": p.driver_name, "plate": p.vehicle_plate,
         "article": p.article, "state": states[p.number], "url": stop_url(p.number)}
        for p in protocols
    ]  # fmt: skip
    return app.page(request, "shift.html", t, officer, rows=rows)
