"""The device's local HTTP interface: health, status and Prometheus metrics (``edge.metrics``) for fleet
monitoring, and the officer app (``edge.officer_app``) unless ``[officer] enabled = false``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from edge.config import EdgeConfig
from edge.identity import DeviceIdentity
from edge.metrics import device_registry
from edge.recorder.recorder import read_status
from edge.sync.outbox import OutboxRecord
from edge.sync.sender import SyncSender
from edge.upload.uploader import upload_progress


def create_device_app(
    config: EdgeConfig,
    identity: DeviceIdentity,
    sessions: sessionmaker[Session],
    sender: SyncSender | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """``/healthz`` (503 when the database or the sync sender fails), ``/status`` and ``/metrics``; ``sender``
    is the running sync sender, if sync is on; the officer app on the same port, on ``clock``."""
    app = FastAPI(title="patrolkit device", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.sessions = sessions
    clock = clock or SystemClock()
    app.state.metrics = device_registry(sessions, config.recording_dir, config.power.sysfs, sender, clock.now)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            with sessions() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # reported, not raised
            checks["database"] = f"error: {type(exc).__name__}"
        if sender is not None:
            checks["sync"] = "ok" if sender.last_error is None else f"error: {sender.last_error}"
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "degraded", "device": identity.device_id, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/status")
    def status() -> dict[str, Any]:
        with sessions() as session:
            pending = session.scalar(
                select(func.count()).select_from(OutboxRecord).where(OutboxRecord.state == "pending")
            )
            upload = asdict(upload_progress(session))
        recorder = read_status(config.recording_dir)
        return {
            "device": identity.device_id,
            "kid": identity.kid,
            "outbox_pending": pending,
            "upload": upload,
            "recorder": recorder,
            "sync": sender.health() if sender is not None else None,
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(app.state.metrics), media_type=CONTENT_TYPE_LATEST)

    if config.officer.enabled:
        from edge.officer_app.web import mount_officer_app

        mount_officer_app(app, config, identity, sessions, clock)
    return app
