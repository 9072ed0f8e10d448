"""Retention in a real browser against a real ``patrol-server run`` process: a supervisor puts a case's
footage on legal hold with the case page's button and releases it; ``patrol-server retention run`` (its own
process) keeps the stop's footage; the admin's fleet view shows the storage used per category, byte for
byte what the store holds for the stop."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from server.db.retention import FootageHold
from server.db.video import VideoSegment

from ..browser_support import LiveServer
from .test_browser_workspace import Scene, log_in, scene, stop_url

pytestmark = pytest.mark.browser
__all__ = ["scene"]


def test_the_case_page_puts_the_footage_on_hold_and_the_fleet_shows_storage_per_category(
    page: Any, live_server: LiveServer, scene: Scene
) -> None:
    log_in(page, live_server)
    page.goto(stop_url(live_server, scene))
    page.select_option("form.new-case select[name=channel]", "written")
    page.fill("form.new-case textarea[name=summary]", "Водитель оспаривает замер скорости")
    page.click("form.new-case button[type=submit]")
    page.wait_for_url(re.compile(r".*/review/cases/\d+$"))
    case_id = int(page.url.rsplit("/", 1)[1])
    assert page.get_attribute("p.hold-state", "data-holding") == "no"
    page.fill("form.hold-place input[name=reason]", "запрос суда / court request")
    page.click("form.hold-place button")
    page.wait_for_url(re.compile(r".*/review/cases/\d+#hold$"))
    assert page.get_attribute("p.hold-state", "data-holding") == "yes"
    assert "court request" in page.inner_text("table.holds")
    with live_server.sessions() as session:
        holds = list(session.scalars(select(FootageHold).where(FootageHold.case_id == case_id)))
    assert [(h.device_id, h.released_at) for h in holds] == [(scene.device_id, None)]
    done = live_server.cli("retention", "run")
    assert "deleted 0 segment(s)" in done.stdout, done.stdout
    with live_server.sessions() as session:
        stored = session.execute(select(func.count(), func.sum(VideoSegment.size)).where(
            VideoSegment.device_id == scene.device_id, VideoSegment.state == "stored")).one()  # fmt: skip
        categories = set(session.scalars(select(VideoSegment.retention_category).where(
            VideoSegment.device_id == scene.device_id)))  # fmt: skip
    assert stored[0] == 5 and categories == {"case"}, "the case keeps as long as the payment: either may win"
    page.click("form.hold-release button")
    page.wait_for_url(re.compile(r".*/review/cases/\d+#hold$"))
    assert page.get_attribute("p.hold-state", "data-holding") == "no"
    page.context.clear_cookies()
    log_in(page, live_server, "adam")
    page.goto(f"{live_server.url}/review/fleet")
    shown = {
        row.get_attribute("data-category"): int(row.get_attribute("data-bytes") or -1)
        for row in page.locator("table.storage tr.category").all()
    }
    assert shown == {"paid_stop": 0, "case": int(stored[1]), "export": 0, "no_event": 0}
    assert "Footage storage by category" in page.inner_text("main")
