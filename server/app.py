"""The server's FastAPI application: database, configuration, every router in ``server.routes``, and the
security headers on every response (``server.security_headers``)."""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

import server.routes
from server.config import ServerConfig
from server.db.base import make_engine, make_sessionmaker
from server.security_headers import SecurityHeaders


def routers() -> list[APIRouter]:
    found = []
    for info in sorted(pkgutil.iter_modules(server.routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"server.routes.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def create_app(config: ServerConfig, sessions: sessionmaker[Session] | None = None) -> FastAPI:
    """Build the app; ``sessions`` may be given by tests, else it is made from the configured database URL."""
    app = FastAPI(title="patrolkit server", version="0.1.0")
    app.state.config = config
    app.state.sessions = sessions or make_sessionmaker(make_engine(config.database.url))
    app.state.metrics = Counter()
    for router in routers():
        app.include_router(router)
    # supervisor review: its login replaces the video playback guard (server/routes/review.py)
    from server.routes.review import secure_playback

    secure_playback(app)
    app.add_middleware(SecurityHeaders, exempt=(app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url))
    return app
