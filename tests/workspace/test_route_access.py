"""Every route of the app, found by walking the app itself: each one either is public for a stated reason
(``server.review.access.PUBLIC``) or names a role guard, and each guarded route refuses a request without a
session (303 to the login page for a page, 401 otherwise) and a session of every role its guard leaves out
(403) for every method it answers. A route added without a guard fails here by name."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from server.review.access import PUBLIC, RoleGuard
from server.review.roles import GRANTS, Permission, Role

from .conftest import ACCOUNTS, DEVICE, Workspace

SAMPLES = {"number": "KZ-2026-001234", "device_id": DEVICE, "seq": "1", "case_id": "1", "file_id": "1", "code": "x", "batch_id": "1", "report_id": "1"}
LOGIN_OF = {role: login for login, role in ACCOUNTS.items()}


def guard_of(route: Any) -> RoleGuard | None:
    def walk(dependant: Any) -> RoleGuard | None:
        for dep in dependant.dependencies:
            if isinstance(dep.call, RoleGuard):
                return dep.call
            found = walk(dep)
            if found is not None:
                return found
        return None

    return walk(route.dependant)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLES[m.group(1)], path)


def all_routes(ws: Workspace) -> list[Any]:
    """Every route of the app, routers' routes included (with their prefixes)."""
    return list(iter_route_contexts(ws.client.app.routes))  # type: ignore[attr-defined]


def guarded_routes(ws: Workspace) -> list[tuple[str, str, RoleGuard]]:
    out = []
    for route in all_routes(ws):
        if isinstance(route.original_route, Mount):
            assert route.path in PUBLIC, f"mount {route.path} is neither guarded nor listed as public"
            continue
        if not isinstance(route.original_route, APIRoute):
            assert route.path in PUBLIC, f"route {route.path} is neither guarded nor listed as public"
            continue
        guard = guard_of(route)
        if route.path in PUBLIC:
            assert guard is None, f"{route.path} is listed as public but has a guard"
            continue
        assert guard is not None, f"{sorted(route.methods)} {route.path} has no role guard and is not listed as public"
        out += [(method, route.path, guard) for method in sorted(route.methods)]
    return out


def test_every_route_is_guarded_or_public_for_a_stated_reason(ws: Workspace) -> None:
    routes = guarded_routes(ws)
    paths = {p for _, p, _ in routes}
    assert {"/review/protocols", "/review/api/footage/{device_id}.m3u8", "/api/video/segments/{device_id}/{seq}/content",
            "/review/cases/{case_id}/files", "/review/fleet", "/review/audit", "/review/accounts"} <= paths  # fmt: skip
    every_permission = {g.permission for _, _, g in routes}
    assert every_permission == set(Permission), "each permission guards at least one route"
    app_paths = {r.path for r in all_routes(ws)}
    assert set(PUBLIC) <= app_paths, f"public entries without a route: {sorted(set(PUBLIC) - app_paths)}"


def test_every_guarded_route_refuses_a_request_without_a_session(ws: Workspace) -> None:
    ws.client.cookies.clear()
    for method, path, _ in guarded_routes(ws):
        response = ws.client.request(method, concrete(path), follow_redirects=False)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/review/login"), (method, path)
            assert method in ("GET", "HEAD") and not path.startswith(("/review/api/", "/api/")), (method, path)
        else:
            assert response.status_code == 401, (method, path, response.status_code, response.text[:200])


@pytest.mark.parametrize("role", list(Role))
def test_every_guarded_route_refuses_the_roles_its_guard_leaves_out(ws: Workspace, role: Role) -> None:
    assert ws.login(LOGIN_OF[role.value]) == 303
    refused = 0
    for method, path, guard in guarded_routes(ws):
        if role in GRANTS[guard.permission]:
            continue
        response = ws.client.request(method, concrete(path), follow_redirects=False)
        assert response.status_code == 403, (role, method, path, response.status_code, response.text[:200])
        refused += 1
    assert refused, f"{role} is refused somewhere"


def test_a_role_is_let_through_where_its_guard_allows(ws: Workspace) -> None:
    assert ws.login("olga") == 303  # auditor
    assert ws.client.get("/review/audit").status_code == 200
    assert ws.client.get("/review/fleet").status_code == 200
    assert ws.client.get("/review/protocols").status_code == 200
    assert ws.login("adam") == 303  # admin
    assert ws.client.get("/review/accounts").status_code == 200
    home = ws.client.get("/review/", follow_redirects=False)
    assert home.headers["location"] == "/review/fleet", "an admin lands on the fleet"
