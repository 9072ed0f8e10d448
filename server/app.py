"""The server's FastAPI application: database, configuration, every router in ``server.routes``, the static
files of the web pages (``/static``), the workspace's answers to refused requests (``server.review.access``,
``server.review.query``) and to a video store that cannot be reached (503 with Retry-After,
``server.review.views.store_unavailable``), and the security headers on every response
(``server.security_headers``)."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

import server.routes
from core.clock import Clock, SystemClock
from server.config import ServerConfig
from server.db.base import make_engine, make_sessionmaker
from server.metrics import ServerMetrics
from server.security_headers import SecurityHeaders
from server.templates import STATIC_DIR
from server.video.storage import StoreUnavailable


def routers() -> list[APIRouter]:
    found = []
    for info in sorted(pkgutil.iter_modules(server.routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"server.routes.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def create_app(
    config: ServerConfig, sessions: sessionmaker[Session] | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app; ``sessions`` may be given by tests, else it is made from the configured database URL;
    ``clock`` (the system clock if None) is the time the app's routes judge requests by."""
    from server.review import access, query
    from server.review.views import problem, store_unavailable
    from server.routes.review import search_error_page
    from server.routes.video import store_free_bytes

    app = FastAPI(title="patrolkit server", version="0.1.0")
    app.state.config = config
    app.state.sessions = sessions or make_sessionmaker(make_engine(config.database.url))
    app.state.metrics = ServerMetrics(app.state.sessions, lambda: store_free_bytes(app))
    app.state.clock = clock or SystemClock()
    for router in routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    access.install(app)
    query.install(app, search_error_page)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Refusals on workspace pages as a page that says why; elsewhere FastAPI's JSON."""
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if path.startswith("/review") and not path.startswith("/review/api/") and exc.status_code < 500:
            return problem(request, exc.status_code, "Запрос отклонён / Request refused", str(exc.detail))
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(HTTPException, http_error)

    async def store_down(request: Request, exc: Exception) -> Response:
        return store_unavailable(request, exc)

    app.add_exception_handler(StoreUnavailable, store_down)
    app.add_middleware(SecurityHeaders, exempt=(app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url))
    return app
