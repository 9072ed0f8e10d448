"""Authentication of the workspace as FastAPI dependencies: ``require(permission)`` gives the logged-in
account of a request (``Reviewer``) if its role has the permission (``server.review.roles``).

- no live session: ``NotLoggedIn``, answered 303 to the login page for a page (GET or HEAD under
  ``/review``, which comes back here afterwards), 401 for anything else (footage, playlists, forms);
- a session whose role lacks the permission: ``NotAllowed``, answered 403 with the reason.

Every route of the app that is not public names its guard (``ROUTE_GUARD`` on the dependency); a test walks
the app's routes and checks both refusals on each. ``PUBLIC`` lists the routes without a guard and why.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from server.review.auth import Reviewer, current_reviewer
from server.review.roles import GRANTS, Permission, allowed

NEXT_URL_PATTERN = r"^/(?:review|fines)(?:/[A-Za-z0-9/_.~%?=&+-]{0,1000})?$"

# Routes anyone may call, by path: why each needs no workspace login.
PUBLIC: dict[str, str] = {
    "/healthz": "health check for the load balancer",
    "/metrics": "Prometheus scrape: its own bearer token (metrics.token), or loopback only without one",
    "/r/{code}": "the driver's receipt check (public by design)",
    "/api/video/segments/{device_id}/{seq}": "device uploads: each request is signed by the device key",
    "/api/video/segments/{device_id}/{seq}/data": "device uploads: each request is signed by the device key",
    "/review": "redirect to the search",
    "/review/": "redirect to the search",
    "/review/login": "the login form",
    "/review/logout": "ends the session of the cookie, if any",
    "/static": "CSS, JS and vendored libraries",
    "/openapi.json": "the API description",
    "/docs": "the API description",
    "/docs/oauth2-redirect": "the API description",
    "/redoc": "the API description",
    "/fines/static/fines.css": "the back office's style sheet",
    "/api/fines/import": "fine imports: each request carries a client key with the import scope",
    "/api/fines/unpaid": "the unpaid look-up for state systems: a client key with the lookup scope, rate-limited, audited",
    "/api/fines/payments": "payment providers: each request is signed with the provider's HMAC key",
    "/api/fines/notices/outcomes": "postal delivery outcomes: a client key with the post scope",
    "/api/fines/bailiff/batches/{batch_id}": "the bailiff's hand-over batches: a client key with the bailiff scope",
    "/api/fines/bailiff/batches/{batch_id}/ack": "the bailiff's acknowledgement: a client key with the bailiff scope",
}


class NotLoggedIn(Exception):
    """The request has no live session of an active account."""


class NotAllowed(Exception):
    """The account's role does not have the permission the route needs."""

    def __init__(self, reviewer: Reviewer, permission: Permission) -> None:
        super().__init__(f"{reviewer.login} ({reviewer.role}) may not {permission.value}")
        self.reviewer = reviewer
        self.permission = permission


class RoleGuard:
    """A dependency: the request's ``Reviewer`` if its role has ``permission``. Kept on ``request.state``
    so error pages can show who is logged in."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission
        self.roles = GRANTS[permission]

    def __call__(self, request: Request) -> Reviewer:
        reviewer = current_reviewer(request)
        if reviewer is None:
            raise NotLoggedIn()
        request.state.reviewer = reviewer
        if not allowed(reviewer.role, self.permission):
            raise NotAllowed(reviewer, self.permission)
        return reviewer

    def __repr__(self) -> str:
        return f"RoleGuard({self.permission.value})"


_GUARDS = {permission: RoleGuard(permission) for permission in Permission}


def require(permission: Permission) -> RoleGuard:
    """The one guard of ``permission`` (the same object each time, so FastAPI caches it per request)."""
    return _GUARDS[permission]


Reviewing = Annotated[Reviewer, Depends(require(Permission.REVIEW))]
Verifying = Annotated[Reviewer, Depends(require(Permission.VERIFY))]
Exporting = Annotated[Reviewer, Depends(require(Permission.EXPORT))]
HandlingCases = Annotated[Reviewer, Depends(require(Permission.CASES))]
Auditing = Annotated[Reviewer, Depends(require(Permission.AUDIT))]
WatchingFleet = Annotated[Reviewer, Depends(require(Permission.FLEET))]
ManagingAccounts = Annotated[Reviewer, Depends(require(Permission.ACCOUNTS))]
ReadingFines = Annotated[Reviewer, Depends(require(Permission.FINES))]


def asked_for(request: Request) -> str:
    """The path and query the browser asked for, as it sent them (percent-encoded)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    return path + (f"?{request.url.query}" if request.url.query else "")


def _is_page(request: Request) -> bool:
    path = request.url.path
    return (
        request.method in ("GET", "HEAD")
        and path.startswith(("/review", "/fines"))
        and not path.startswith("/review/api/")
        and not path.endswith((".m3u8", ".zip", ".json", ".csv"))
    )


def to_login(request: Request) -> RedirectResponse:
    """To the login page, which sends the browser back here afterwards (``next``, query string and all)."""
    import re

    target = asked_for(request)
    query = f"?{urlencode({'next': target})}" if re.fullmatch(NEXT_URL_PATTERN, target) else ""
    return RedirectResponse(f"/review/login{query}", status_code=303)


def install(app: FastAPI) -> None:
    """Answer ``NotLoggedIn`` and ``NotAllowed`` as the module docstring says."""

    async def not_logged_in(request: Request, exc: Exception) -> Response:
        if _is_page(request):
            return to_login(request)
        return JSONResponse(
            {"detail": "log in as an active account at /review/login first"}, status_code=401
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotAllowed)
        text = (
            f"У вашей роли нет права «{exc.permission.value}» / your role ({exc.reviewer.role}) "
            f"may not {exc.permission.value} here"
        )
        if request.url.path.startswith("/review") and not request.url.path.startswith("/review/api/"):
            from server.review.views import problem

            return problem(request, 403, "Нет доступа / Not allowed", text, exc.reviewer)
        return JSONResponse({"detail": text}, status_code=403)

    app.add_exception_handler(NotLoggedIn, not_logged_in)
    app.add_exception_handler(NotAllowed, not_allowed)
