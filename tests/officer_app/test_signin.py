"""Sign-in and locking, in a real browser: five wrong PINs lock that badge for 15 minutes (the clock is moved,
not waited for), the app locks itself after the idle time even while a page is open, the PIN unlocks it and
returns to the page, and an officer from the server's signed ``officers`` dataset signs in with its PIN."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from officer_rig import OfficerRig
from sqlalchemy import select

from core.sync.datasets import sign_dataset
from core.sync.signing import KeyRing, Signer, Verifier
from edge.db.base import transaction
from edge.db.protocols import Officer
from edge.officer_app.accounts import hash_pin
from edge.sync.datasets import apply_dataset

pytestmark = pytest.mark.browser


def _try(rig: OfficerRig, page: Any, badge: str, pin: str) -> str:
    rig.sign_in(page, badge, pin)
    return page.url


def test_five_wrong_pins_lock_the_badge_for_fifteen_minutes(rig: OfficerRig, tablet: Any) -> None:
    for n in range(1, 5):
        _try(rig, tablet, "B-3", "0000")
        assert f"Осталось попыток: {5 - n}" in tablet.inner_text("#signin-error")
    _try(rig, tablet, "B-3", "0000")
    assert "заблокирован" in tablet.inner_text("#signin-error")
    rig.shot(tablet, "01b-signin-locked")

    _try(rig, tablet, "B-3", "2468")  # the right PIN, but the badge is locked
    assert "/signin" in tablet.url and "заблокирован" in tablet.inner_text("#signin-error")
    _try(rig, tablet, "B-2", "5678")  # other badges are not locked
    assert tablet.url.endswith("/stops/new")

    tablet.context.clear_cookies()
    rig.clock.advance(14 * 60)
    _try(rig, tablet, "B-3", "2468")
    assert "/signin" in tablet.url
    rig.clock.advance(61)
    _try(rig, tablet, "B-3", "2468")
    assert tablet.url.endswith("/stops/new")
    with rig.sessions() as s:
        officer = s.get(Officer, "B-3")
        assert officer is not None and officer.pin_failures == 0


def test_unknown_badge_is_answered_like_a_wrong_pin(rig: OfficerRig, tablet: Any) -> None:
    _try(rig, tablet, "NOBODY", "1234")
    assert "/signin" in tablet.url and "Неверный жетон или PIN" in tablet.inner_text("#signin-error")


def test_idle_app_locks_itself_and_the_pin_returns_to_the_same_page(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet)
    tablet.goto(f"{rig.url}/shift")
    tablet.wait_for_selector("#status-bar")
    rig.clock.advance(rig.config.officer.idle_lock_s + 1)
    tablet.wait_for_url(
        re.compile(r"/lock\?next="), timeout=10_000
    )  # the open page learns it from its live stream
    rig.shot(tablet, "01c-idle-lock")
    tablet.goto(f"{rig.url}/stops/new")  # no page opens while locked
    assert "/lock" in tablet.url

    tablet.fill("#pin", "9999")
    tablet.click("button.primary")
    assert "/lock" in tablet.url and "4" in tablet.inner_text("#lock-error")
    tablet.fill("#pin", "1234")
    tablet.click("button.primary")
    tablet.wait_for_url("**/stops/new")


def test_a_live_stream_opened_after_the_app_locked_sends_the_page_to_the_lock_screen(
    rig: OfficerRig, tablet: Any
) -> None:
    """The page's live stream may connect only after the idle time ran out: it is told to lock, not redirected
    (an event source cannot follow a redirect, and the page would stay unlocked on the screen)."""
    rig.sign_in(tablet)
    rig.clock.advance(rig.config.officer.idle_lock_s + 1)
    cookies = {c["name"]: c["value"] for c in tablet.context.cookies()}
    with httpx.Client(base_url=rig.url, cookies=cookies, timeout=10) as client:
        reply = client.get("/live", params={"page": "/shift"})
    assert reply.status_code == 200 and 'data: {"lock": "/lock?next=/shift"}' in reply.text


def test_an_officer_from_the_officers_dataset_signs_in_with_its_pin(rig: OfficerRig, tablet: Any) -> None:
    server = Signer.generate()
    content = json.dumps(
        {
            "officers": [
                {
                    "badge": "DS-77",
                    "full_name": "Әлиев Бауыржан",
                    "unit": "ДПС",
                    "language": "kk",
                    "pin_argon2": hash_pin("8642"),
                }
            ]
        }
    ).encode()
    signed = sign_dataset(server, "officers", 1, content, rig.clock.now())
    with transaction(rig.sessions) as s:
        apply_dataset(s, signed.to_wire(), KeyRing([Verifier(server.public_raw())]), rig.clock.now())

    _try(rig, tablet, "DS-77", "1111")
    assert "/signin" in tablet.url
    _try(rig, tablet, "DS-77", "8642")
    assert tablet.url.endswith("/stops/new")
    assert "Жаңа хаттама" in tablet.inner_text("h1")  # the dataset's language
    with rig.sessions() as s:
        stored = s.scalar(select(Officer).where(Officer.badge == "DS-77"))
        assert stored is not None and stored.pin_hash is None  # the hash stays in the dataset


def test_idle_time_is_reset_by_the_officers_requests(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet)
    rig.clock.advance(rig.config.officer.idle_lock_s - 20)
    tablet.goto(f"{rig.url}/shift")
    rig.clock.advance(30)
    tablet.goto(f"{rig.url}/check")
    assert tablet.url.endswith("/check")
