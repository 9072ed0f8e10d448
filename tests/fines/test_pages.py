"""The back-office pages in a real browser (Chromium through Playwright) behind the supervisor login: fines by
state, a fine's history, hand-over batches with their printable documents, reconciliation reports and the
publication list; and over HTTP: the login guard, parameter checks, 404s and escaping."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.config import KeysSection, ServerConfig
from server.db.base import transaction
from server.db.fines import Fine
from server.fines.daily_run import FineWork, run_daily
from server.fines.postal import DeliveryOutcome, apply_outcome
from server.fines.reconciliation import reconcile
from server.fines.runtime import FinesRuntime
from server.review.accounts import add_supervisor
from simulators.demo import free_port
from tests.fines.conftest import T0, Api, Device, add_provider, georgian_fines, kz_protocol, provider_post

PASSWORD = "correct horse battery"


def fill(sessions: sessionmaker[Session], device: Device, work: FineWork, api: Api | None = None) -> None:
    """Three KZ fines to the bailiff (one then paid by a bank payment valued in its discount window), two Georgian
    ones published, a reconciled statement."""
    device.send(*(("protocol", kz_protocol(f"KZ-W-{i}")) for i in range(3)))
    for day in (date(2026, 3, 2), date(2026, 3, 13), date(2026, 4, 21), date(2026, 4, 27)):
        run_daily(sessions, day, work, lambda d=day: T0.replace(year=d.year, month=d.month, day=d.day))
    ids = georgian_fines(sessions, work, 2)
    assert ids
    run_daily(sessions, date(2026, 3, 13), work, lambda: T0.replace(day=13))
    with transaction(sessions) as session:
        numbers = list(session.scalars(select(Fine.number).where(Fine.jurisdiction == "GE")))
        for n in numbers:
            apply_outcome(session, DeliveryOutcome(tracking=f"{n}/notice1", outcome="undelivered", on=date(2026, 3, 13)),
                          "file", T0.replace(day=13))  # fmt: skip
    run_daily(sessions, date(2026, 3, 14), work, lambda: T0.replace(day=14))
    with transaction(sessions) as session:
        for n in numbers:
            apply_outcome(session, DeliveryOutcome(tracking=f"{n}/notice2", outcome="undelivered", on=date(2026, 3, 20)),
                          "file", T0.replace(day=20))  # fmt: skip
    run_daily(sessions, date(2026, 3, 20), work, lambda: T0.replace(day=20))
    if api is not None:
        key = add_provider(sessions)
        body = {
            "reference": "B-1",
            "fine": "KZ-W-0",
            "amount_minor": 2162500,
            "currency": "KZT",
            "value_date": "2026-03-02",
        }
        assert provider_post(api, "halyk", key, body).status_code == 201
        with transaction(sessions) as session:
            reconcile(session, "halyk", date(2026, 3, 2), "halyk.csv",
                      b"reference,fine,amount_minor,currency,value_date\nB-1,KZ-W-0,2162000,KZT,2026-03-02\n", T0)  # fmt: skip


def test_the_pages_need_a_supervisor_and_check_their_parameters(api: Api, device: Device) -> None:
    c = api.client
    r = c.get("/fines", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    with transaction(api.sessions) as session:
        add_supervisor(session, "anna", "Анна Ким", PASSWORD, T0)
    page = c.get("/review/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    assert c.post("/review/login", data={"csrf": token, "login": "anna", "password": PASSWORD},
                  follow_redirects=False).status_code == 303  # fmt: skip
    assert c.get("/fines").status_code == 200
    assert c.get("/fines/list?state=sleeping").status_code == 422
    assert c.get("/fines/list?page=0").status_code == 422
    assert c.get("/fines/fine/NOPE-1").status_code == 404
    assert c.get("/fines/bailiff/99").status_code == 404
    assert c.get("/fines/reconciliation/0").status_code == 422
    body = kz_protocol("KZ-XSS-1") | {"driver_name": "<script>alert(1)</script>"}
    device.send(("protocol", body))
    page = c.get("/fines/fine/KZ-XSS-1")
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


@pytest.fixture
def live(server_sessions: sessionmaker[Session], work: FineWork, tmp_path: Path) -> Iterator[str]:
    config = ServerConfig(data_dir=tmp_path, keys=KeysSection(signing_key_file=tmp_path / "server.key"))
    app = create_app(config, server_sessions)
    app.state.fines = FinesRuntime(work)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.browser
def test_a_supervisor_follows_fines_from_the_counts_to_a_history_a_batch_a_report_and_the_publication(
    api: Api, device: Device, work: FineWork, live: str, page: Any
) -> None:
    fill(api.sessions, device, work, api)
    with transaction(api.sessions) as session:
        add_supervisor(session, "anna", "Анна Ким", PASSWORD, T0)
    problems: list[str] = []  # CSP refusals show up as console errors; failed loads as responses
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None,
    )
    page.on(
        "response", lambda r: problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None
    )
    page.goto(f"{live}/fines")
    assert "/review/login" in page.url  # no session: the review login
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/review/login" not in url)
    page.goto(f"{live}/fines")
    assert page.locator("h1").inner_text() == "Штрафы по состояниям / Fines by state"
    kz = page.locator("section", has=page.locator("h2", has_text="KZ")).first
    assert "handed_over" in kz.inner_text() and page.locator("header .who").inner_text() == "Анна Ким"
    page.click("text=handed_over")
    assert page.locator("#fines tbody tr").count() == 2
    page.click("#fines >> text=KZ-W-1")
    history = page.locator("#history").inner_text()
    for step in ("discount", "discount_end", "demand", "handover"):
        assert step in history
    assert "demand" in page.locator("#sms").inner_text()
    page.click("text=batch 1")
    docs = page.locator("article.document")
    assert docs.count() == 3 and "KZ-W-1/enforcement" in docs.nth(1).inner_text()
    assert (
        page.evaluate("getComputedStyle(document.querySelector('article.document')).pageBreakAfter")
        == "always"
    )
    page.goto(f"{live}/fines/bailiff")
    assert "not yet" in page.locator("#batches").inner_text()
    page.goto(f"{live}/fines/reconciliation")
    page.click("#reports >> text=1")
    assert "amount_minor: statement 2162000, ours 2162500" in page.locator("#items").inner_text()
    page.goto(f"{live}/fines/publications")
    rows = page.locator("#publications tbody tr")
    assert rows.count() == 2 and "2026-03-20" in rows.nth(0).inner_text()
    page.click("#publications >> a >> nth=0")
    assert (
        "notice2" in page.locator("#notices").inner_text()
        and "undelivered" in page.locator("#notices").inner_text()
    )
    csv_text = page.request.get(f"{live}/fines/publications.csv").text()
    assert csv_text.splitlines()[0].startswith("fine,plate,article")
    assert problems == []
