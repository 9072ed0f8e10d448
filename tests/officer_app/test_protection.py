"""Protected writes and the device's own assets: a state-changing request without the form's token, or from
another origin (a page on another port of the same host, in the browser), is refused and changes nothing;
pages need a signed-in officer; every response carries the security headers; every asset comes from the
device; and no screen or route can stop the recorder."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from officer_rig import DRIVER_IIN, OfficerRig
from sqlalchemy import func, select

from edge.db.protocols import Protocol

pytestmark = pytest.mark.browser


def _count(rig: OfficerRig) -> int:
    with rig.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Protocol)) or 0)


def _signed_in_client(rig: OfficerRig) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=rig.url, follow_redirects=True, timeout=10)
    page = client.get("/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    client.post("/signin", data={"badge": "B-1", "pin": "1234", "csrf": token.group(1), "next": "/stops/new"})
    csrf = re.search(r'data-csrf="([^"]+)"', client.get("/stops/new").text)
    assert csrf is not None
    return client, csrf.group(1)


STOP = {
    "driver_iin": DRIVER_IIN,
    "driver_name": "Жанболатов Арман",
    "vehicle_plate": "123ABC01",
    "article": "592.1",
}


def test_writes_without_the_token_or_from_another_origin_are_refused(rig: OfficerRig) -> None:
    client, csrf = _signed_in_client(rig)
    before = _count(rig)
    try:
        missing = client.post("/stops", data={**STOP, "number": "X-1"})
        stale = client.post("/stops", data={**STOP, "number": "X-2", "csrf": "not-the-token"})
        cross_site = client.post(
            "/stops", data={**STOP, "number": "X-3", "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        same_site = client.post(
            "/stops", data={**STOP, "number": "X-4", "csrf": csrf}, headers={"Sec-Fetch-Site": "same-site"}
        )
        other_origin = client.post(
            "/stops", data={**STOP, "number": "X-5", "csrf": csrf}, headers={"Origin": "http://evil.example"}
        )
        signin_forged = client.post("/signin", data={"badge": "B-1", "pin": "1234", "csrf": "guess"})
        good = client.post(
            "/stops", data={**STOP, "number": "X-6", "csrf": csrf}, headers={"Sec-Fetch-Site": "same-origin"}
        )
    finally:
        client.close()
    assert missing.status_code == 422  # the token is a required field of every form
    assert [r.status_code for r in (stale, cross_site, same_site, other_origin, signin_forged)] == [403] * 5
    assert (
        "another site" in cross_site.text and "another origin" in other_origin.text and "token" in stale.text
    )
    assert good.status_code == 200 and _count(rig) == before + 1


def test_a_page_of_another_origin_cannot_post_through_the_officers_browser(
    rig: OfficerRig, tablet: Any
) -> None:
    """An attacker's page on another port of the same host: the kiosk's cookies go along (same site), the
    browser says ``Sec-Fetch-Site: same-site``, and the app refuses."""
    rig.sign_in(tablet)
    form = "".join(
        f'<input name="{k}" value="{v}">' for k, v in {**STOP, "number": "EVIL-1", "csrf": "x"}.items()
    )
    html = f'<form id="f" method="post" action="{rig.url}/stops">{form}</form>'.encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            return

    evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    before = _count(rig)
    try:
        tablet.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        with tablet.expect_response(lambda r: r.url.endswith("/stops")) as reply:
            tablet.evaluate("document.getElementById('f').submit()")
        assert reply.value.status == 403
    finally:
        evil.shutdown()
    assert _count(rig) == before


def test_pages_need_a_signed_in_officer(rig: OfficerRig) -> None:
    with httpx.Client(base_url=rig.url, timeout=10) as client:
        for path in ("/stops/new", "/shift", "/check", "/stop?n=X", "/stop/pay?n=X"):
            reply = client.get(path)
            assert reply.status_code == 303 and reply.headers["location"].startswith("/signin?next="), path
        assert client.post("/stop/pay", data={"n": "X", "key": "0" * 32, "csrf": "x"}).status_code == 303
        # the live stream answers in its own terms (a browser's event source cannot follow a redirect)
        live = client.get("/live", params={"page": "/shift"})
        assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
        assert 'data: {"lock": "/signin?next=/shift"}' in live.text and "status" not in live.text


def test_security_headers_and_no_asset_from_elsewhere(rig: OfficerRig, tablet: Any) -> None:
    hosts: set[str] = set()
    tablet.context.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    rig.sign_in(tablet)
    reply = tablet.goto(f"{rig.url}/stops/new")
    assert reply is not None
    headers = reply.headers
    assert (
        "script-src 'self'" in headers["content-security-policy"]
        and "default-src 'none'" in headers["content-security-policy"]
    )
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store" and headers["server-timing"].startswith("app;dur=")
    rig.new_stop(tablet)
    tablet.click("#to-driver")
    assert hosts == {urlsplit(rig.url).netloc}
    for src in tablet.locator("script[src], link[href], img[src]").all():
        value = src.get_attribute("src") or src.get_attribute("href") or ""
        assert value.startswith("/"), value


def _routes(routes: list[Any]) -> list[Any]:
    """Every endpoint route of the app, through included routers (FastAPI includes them lazily)."""
    out: list[Any] = []
    for r in routes:
        if hasattr(r, "original_router"):
            out += _routes(r.original_router.routes)
        elif getattr(r, "methods", None):
            out.append(r)
    return out


def test_no_screen_and_no_route_can_stop_the_recorder(rig: OfficerRig, tablet: Any) -> None:
    writes = [
        (sorted(r.methods), r.path) for r in _routes(rig.app.routes) if set(r.methods) - {"GET", "HEAD"}
    ]
    assert writes and not [w for w in writes if re.search(r"record|camera|video|segment", w[1])], writes
    rig.sign_in(tablet)
    rig.new_stop(tablet)
    for path in ("/stops/new", "/shift", "/check"):
        tablet.goto(f"{rig.url}{path}")
        chip = tablet.locator("#status-bar [data-key='recorder']")
        assert chip.count() == 1 and chip.locator("a, button, form, input").count() == 0
        actions = [f.get_attribute("action") or "" for f in tablet.locator("form").all()]
        assert not [a for a in actions if re.search(r"record|camera|video", a)], actions
