"""The supervisor review in a real browser (Debian's Chromium through Playwright) against a real server
process: logging in and out, searching, opening a protocol and playing its footage; forms posted from
another site are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ..browser_support import LiveServer, Stop, seed_stop

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stop(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stop]:
    yield seed_stop(live_server, tmp_path_factory.mktemp("device"))


def log_in(page: Any, server: LiveServer, password: str | None = None) -> None:
    """Fill and send the login form the way a supervisor does (the page must show it)."""
    page.fill("input[name=login]", server.login)
    page.fill("input[name=password]", password or server.password)
    page.click("button[type=submit]")


def test_supervisor_logs_in_and_out(page: Any, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/review/protocols")
    assert page.url.startswith(f"{live_server.url}/review/login"), "a page without a session asks for a login"
    log_in(page, live_server, password="not the password")
    assert "wrong login or password" in page.inner_text("p.error")
    log_in(page, live_server)
    page.wait_for_url(f"{live_server.url}/review/protocols")
    assert live_server.full_name in page.inner_text("header")
    page.click("form.logout button")
    page.wait_for_url(f"{live_server.url}/review/login")
    page.goto(f"{live_server.url}/review/protocols")
    assert page.url.startswith(f"{live_server.url}/review/login"), "the session ended at logout"


def test_search_opens_the_protocol_and_its_segment_plays(page: Any, live_server: LiveServer, stop: Stop) -> None:
    page.goto(f"{live_server.url}/review/login")
    log_in(page, live_server)
    page.wait_for_url(f"{live_server.url}/review/protocols")
    page.fill("input[name=number]", stop.number[:6])
    page.click("form.search button[type=submit]")
    page.click(f"text={stop.number}")
    page.wait_for_url(re.compile(r".*/review/protocols/.+"))
    assert stop.number in page.inner_text("h1"), "a number with '/' opens its page"
    assert page.locator(f"#seg-{stop.device_id}-{stop.seq}").count() == 1, "its segment is listed"
    video = page.locator("section.footage video")
    assert video.count() == 1, "one player for the stop"
    page.wait_for_function(
        "v => v.currentTime > 1.0 && !v.error", arg=video.element_handle(), timeout=15_000
    )  # it plays by itself (muted), from the playlist the server made
    state = video.evaluate("v => ({t: v.currentTime, w: v.videoWidth, h: v.videoHeight, err: v.error})")
    assert state["t"] > 1.0 and (state["w"], state["h"]) == (160, 120) and state["err"] is None


def test_login_brings_the_browser_back_to_its_search_with_every_parameter(
    page: Any, live_server: LiveServer, stop: Stop
) -> None:
    query = urlencode({"number": stop.number[:6], "plate": stop.plate})
    page.goto(f"{live_server.url}/review/protocols?{query}")
    assert "/review/login" in page.url
    log_in(page, live_server)
    page.wait_for_url(f"{live_server.url}/review/protocols?{query}")
    assert page.input_value("input[name=plate]") == stop.plate
    assert page.locator(f"text={stop.number}").count() == 1


def test_a_form_posted_from_another_site_changes_nothing(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    page.goto(f"{live_server.url}/review/login")
    log_in(page, live_server)
    page.wait_for_url(f"{live_server.url}/review/protocols")
    token = page.input_value("form.logout input[name=csrf]")
    attacker = "http://attacker.invalid/"
    page.route(
        attacker,
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form id="f" method="post" action="{live_server.url}/review/logout">'
                f'<input type="hidden" name="csrf" value="{token}"></form>'
                '<script>document.getElementById("f").submit()</script>'
            ),
        ),
    )
    page.goto(attacker)
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/.*"))
    page.goto(f"{live_server.url}/review/protocols")
    assert page.url == f"{live_server.url}/review/protocols", "still logged in"
    assert live_server.full_name in page.inner_text("header")
