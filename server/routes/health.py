"""Liveness, readiness and metrics of the server."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 when the process is up, its database answers and every ingest worker runs, is connected and keeps
    up with its input; 503 with the reasons otherwise."""
    checks: dict[str, Any] = {}
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # the health endpoint reports any failure instead of raising
        checks["database"] = f"error: {type(exc).__name__}"
    ingest = getattr(request.app.state, "ingest", None)
    if ingest is not None:
        for client_id, state in ingest.health().items():
            checks[f"ingest {client_id}"] = state
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format: the app's registry (``server.metrics``)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
