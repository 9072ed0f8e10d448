"""Liveness, readiness and metrics of the server.

``/metrics`` is not public: with ``metrics.token`` configured it needs ``Authorization: Bearer <token>``
(401 with ``WWW-Authenticate: Bearer`` otherwise, the token compared in constant time); without a token only
a client on the loopback address that came through no proxy (no ``Forwarded``, ``X-Forwarded-For`` or
``X-Real-IP`` header) may scrape it (403 for any other, saying to configure a token).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


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


def _loopback(request: Request) -> bool:
    """Whether the request came from this host's loopback address, straight (not through a proxy)."""
    if request.client is None or any(name in request.headers for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def scrape_refusal(request: Request, token: str | None) -> Response | None:
    """Why this request may not read ``/metrics`` (see the module docstring), or None if it may."""
    if token is None:
        if _loopback(request):
            return None
        return PlainTextResponse(
            "metrics: only from this host's loopback without metrics.token; configure metrics.token and "
            "scrape with Authorization: Bearer <token>\n",
            status_code=403,
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    return PlainTextResponse(
        "metrics: send Authorization: Bearer <metrics.token>\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format: the app's registry (``server.metrics``), for a scraper with the token."""
    refused = scrape_refusal(request, request.app.state.config.metrics.token)
    if refused is not None:
        return refused
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
