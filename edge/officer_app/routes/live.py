"""Live updates by server-sent events: the status bar of every screen and, on a stop's payment screen, its
payment panel (terminal states in words, questions, outcome, receipts). Each event carries the fragments that
changed as HTML rendered by the same templates as the page; a session that locked while the page was open
gets a ``lock`` event (the page goes to the lock screen), and so does a stream opened by a page whose session
has locked or ended meanwhile (never a redirect, which an event stream cannot follow). Reading the stream is not
the officer's activity: only taps and typing keep the app unlocked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from edge.officer_app.guards import SESSION_COOKIE, Officer, app_of, safe_next
from edge.officer_app.routes.payment import render_panel
from edge.officer_app.routes.receipts import render_receipts

router = APIRouter()
TICK_S = 1.0  # how often an open stream looks at the clock (idle lock) and the status bar


@router.get("/live")
async def live(
    request: Request,
    n: str = "",
    lang: str = "",
    page: str = "/",
    view: Literal["pay", "receipts"] = "pay",
) -> StreamingResponse:
    app = app_of(request)
    token = request.cookies.get(SESSION_COOKIE) or ""
    back = quote(safe_next(page), safe="/?=&")

    def fragments() -> dict[str, str]:
        session = app.accounts.session(token, touch=False)
        if session is None:
            return {"lock": f"/signin?next={back}"}
        if session.locked:
            return {"lock": f"/lock?next={back}"}
        officer = Officer(session, app.translator(session.language))
        out = {
            "status": app.render_fragment(
                "_status.html", t=officer.t, status_items=app.status_items(officer.t)
            )
        }
        if n:
            try:
                out["panel"] = (
                    render_receipts(request, officer, n)
                    if view == "receipts"
                    else render_panel(request, officer, n, lang)
                )
            except HTTPException:  # no such protocol (or no payment yet): nothing to show live
                out["panel"] = ""
        return out

    async def stream() -> AsyncIterator[str]:
        sent: dict[str, str] = {}
        seen = -1
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            current = await run_in_threadpool(fragments)
            changed = {k: v for k, v in current.items() if sent.get(k) != v}
            if changed:
                sent.update(changed)
                yield f"data: {json.dumps(changed, ensure_ascii=False)}\n\n"
            if "lock" in current:
                return
            app.desk.request_poll()
            seen = await app.desk.bus.wait(seen, TICK_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})
