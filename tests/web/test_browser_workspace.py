"""The supervisor workspace in a real browser (Debian's Chromium through Playwright) against a real
``patrol-server run`` process, answering a driver's complaint as a supervisor would: log in, find the stop by
each field, watch its footage in one go (the player plays across segment boundaries by itself, the timeline
draws the power-loss gap, clicking "approved" plays from that moment), export the evidence and check it with
sha256sum and openssl, take a complaint through its states; an auditor and an admin are refused what their
roles do not allow; the admin sees the fleet.

The footage: five 2-s segments recorded by the recorder's own code and uploaded over signed HTTP by a device
that ``patrol-server device add`` provisioned, with a 60-s power-loss gap after the third.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from core.receipt_code import ReceiptClaim, encode_receipt_code
from edge.identity import load_identity

from ..browser_support import LiveServer
from ..workspace.footage_support import (
    STARTS,
    TIMES,
    T,
    add_segment_rows,
    add_stop_rows,
    record_shift,
    upload_shift,
)
from ..workspace.test_export import commands_of

pytestmark = pytest.mark.browser

OTHER_ROLES = {"olga": "auditor", "adam": "admin"}


@dataclass(frozen=True)
class Scene:
    number: str
    device_id: str
    iin: str
    plate: str
    badge: str
    driver: str


@pytest.fixture(scope="module")
def scene(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    suffix = uuid.uuid4().hex[:6].upper()
    device_id = f"DEV-BW-{suffix}"
    keys = tmp_path_factory.mktemp("keys")
    live_server.cli("device", "add", device_id, "--out", str(keys))
    identity = load_identity(device_id, keys / f"{device_id}.key")
    shift = record_shift(tmp_path_factory.mktemp("shift"), identity, STARTS)
    assert upload_shift(live_server.url, shift) == len(STARTS)
    add_segment_rows(live_server.sessions, shift, gaps=[(STARTS[2] + timedelta(seconds=2), STARTS[3], "power_loss")])
    number = f"KZ-{suffix}/9"
    iin = f"99{uuid.uuid4().int % 10**10:010d}"
    found = Scene(number, device_id, iin, f"{suffix[:3]}XY02", f"B-{suffix[:4]}", f"Жанболатов{suffix[:2].lower()} Арман")
    code = encode_receipt_code(ReceiptClaim(device_id, number, "000042", 1081250, 398, TIMES.approved), identity.private_key)
    add_stop_rows(live_server.sessions, number, device_id, TIMES, (T, T + timedelta(seconds=70)), driver=found.driver,
                  iin=iin, plate=found.plate, badge=found.badge, verify_code=code)  # fmt: skip
    password = tmp_path_factory.mktemp("pw") / "password"
    password.write_text(live_server.password + "\n")
    for login, role in OTHER_ROLES.items():
        live_server.cli("supervisor", "add", login, "--name", f"{login.title()} Test", "--role", role,
                        "--password-file", str(password))  # fmt: skip
    return found


def log_in(page: Any, server: LiveServer, login: str | None = None) -> None:
    page.goto(f"{server.url}/review/login")
    page.fill("input[name=login]", login or server.login)
    page.fill("input[name=password]", server.password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def stop_url(server: LiveServer, scene: Scene) -> str:
    return f"{server.url}/review/protocols/{quote(scene.number, safe='')}"


def found_numbers(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("table.results a.protocol").all_inner_texts()]


def test_search_finds_the_stop_by_each_field(page: Any, live_server: LiveServer, scene: Scene) -> None:
    log_in(page, live_server)
    assert page.url == f"{live_server.url}/review/protocols"
    assert scene.number in found_numbers(page), "the recent stops are listed before any search"
    latin = "Zhanbolatov" + scene.driver.split()[0].removeprefix("Жанболатов")
    for field, value in (("number", scene.number[:9]), ("plate", scene.plate.lower()), ("iin", scene.iin),
                         ("name", scene.driver.split()[0]), ("name", latin + " Arman"), ("badge", scene.badge),
                         ("date", "2026-03-02"), ("date_from", "2026-03-01")):  # fmt: skip
        page.goto(f"{live_server.url}/review/protocols")
        page.fill(f"input[name={field}]", value)
        page.click("form.search button[type=submit]")
        page.wait_for_load_state()
        assert scene.number in found_numbers(page), (field, value)
    page.click(f"table.results a.protocol >> text={scene.number}")
    page.wait_for_url(re.compile(r".*/review/protocols/.+"))
    page.click("a.back")
    page.wait_for_url(re.compile(r".*/review/protocols\?date_from=2026-03-01"))


def test_the_stop_plays_in_one_go_draws_the_gap_and_seeks_to_approved(page: Any, live_server: LiveServer, scene: Scene) -> None:
    log_in(page, live_server)
    page.goto(stop_url(live_server, scene))
    video = page.locator("section.footage video")
    assert video.get_attribute("controls") is None, "no native controls over the picture"
    video_box, controls_box = video.bounding_box(), page.locator("section.footage .controls").bounding_box()
    assert controls_box["y"] >= video_box["y"] + video_box["height"] - 1, "our controls sit below the burnt-in overlay"
    handle = video.element_handle()
    page.wait_for_function("v => v.currentTime > 4.6 && !v.error", arg=handle, timeout=30_000)
    state = video.evaluate("v => ({t: v.currentTime, w: v.videoWidth, paused: v.paused})")
    assert state["t"] > 4.6 and state["w"] == 160, "it played across the boundaries at 2 s and 4 s by itself"

    gap = page.locator("section.footage .tl-track .tl-gap")
    assert gap.count() == 1 and "power loss" in (gap.get_attribute("title") or "")
    box = gap.bounding_box()
    track = page.locator("section.footage .tl-track").bounding_box()
    assert box is not None and abs(box["width"] / track["width"] - 60 / 310) < 0.01, (
        "60 s of the 310-s window (the bookmark ± 2 min), to scale"
    )
    assert page.locator("ul.stretches li.gap").inner_text().endswith("потеря питания / power loss")

    approved = page.locator("ol.events button.ev-approved")
    assert approved.count() == 1 and "+05:00" in approved.inner_text(), "local time with the offset"
    approved.click()
    target = int(TIMES.approved.timestamp() * 1000)
    page.wait_for_function(
        "([s, target]) => s.dataset.wall && Math.abs(Number(s.dataset.wall) - target) < 1000",
        arg=[page.locator("section.footage").element_handle(), target], timeout=15_000,
    )  # fmt: skip
    assert "2026-03-02 14:11:0" in page.inner_text("section.footage .clock"), "the clock shows local time"


def test_the_evidence_exported_from_the_page_verifies_with_sha256sum_and_openssl(
    page: Any, live_server: LiveServer, scene: Scene, tmp_path: Path
) -> None:
    if any(shutil.which(t) is None for t in ("sha256sum", "openssl")):
        pytest.skip("the evidence check needs sha256sum and openssl: apt-get install coreutils openssl")
    log_in(page, live_server)
    page.goto(stop_url(live_server, scene))
    with page.expect_download() as info:
        page.click("form.export button")
    path = tmp_path / "evidence.zip"
    info.value.save_as(path)
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    results = [subprocess.run(c, cwd=folder, capture_output=True, text=True, timeout=60) for c in commands_of(folder)]
    assert results and all(r.returncode == 0 for r in results), [(r.args, r.stderr) for r in results if r.returncode]
    assert sum(1 for r in results if "Signature Verified Successfully" in r.stdout) == len(STARTS) + 1
    segment = folder / "segments" / scene.device_id / "0000000002.mp4"
    data = bytearray(segment.read_bytes())
    data[100] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert any(subprocess.run(c, cwd=folder, capture_output=True, timeout=60).returncode for c in commands_of(folder))


def test_a_complaint_goes_through_its_states(page: Any, live_server: LiveServer, scene: Scene) -> None:
    log_in(page, live_server)
    page.goto(stop_url(live_server, scene))
    page.select_option("form.new-case select[name=channel]", "erap_appeal")
    page.fill("form.new-case input[name=reference]", "ERAP-77")
    page.fill("form.new-case textarea[name=summary]", "Водитель оспаривает замер скорости")
    page.click("form.new-case button[type=submit]")
    page.wait_for_url(re.compile(r".*/review/cases/\d+$"))
    assert page.get_attribute("p.state", "data-state") == "received"
    page.click("form.move-under_review button")
    page.wait_for_load_state()
    assert page.get_attribute("p.state", "data-state") == "under_review"
    page.select_option("form.move-decided select[name=outcome]", "rejected")
    page.fill("form.move-decided textarea[name=decision_text]", "Скорость подтверждена видео")
    page.click("form.move-decided button")
    page.wait_for_load_state()
    assert page.get_attribute("p.state", "data-state") == "decided"
    page.click("form.move-closed button")
    page.wait_for_load_state()
    assert page.get_attribute("p.state", "data-state") == "closed"
    history = page.inner_text("table.history")
    assert "отклонена / rejected" in page.inner_text("main") and history.count("moved") == 3
    page.goto(stop_url(live_server, scene))
    assert page.locator("p.appealed").count() == 0, "a closed case no longer marks the protocol appealed"


def test_roles_are_refused_what_they_may_not_do_and_the_admin_sees_the_fleet(
    page: Any, live_server: LiveServer, scene: Scene
) -> None:
    log_in(page, live_server, "olga")  # auditor: reads, verifies, never exports or handles cases
    page.goto(stop_url(live_server, scene))
    assert page.locator("form.export").count() == 0 and page.locator("form.new-case").count() == 0
    assert page.locator("form.verify").count() == 1
    token = page.input_value("form.verify input[name=csrf]")
    refused = page.request.post(f"{stop_url(live_server, scene)}/export", form={"csrf": token})
    assert refused.status == 403
    page.goto(f"{live_server.url}/review/accounts")
    assert "Нет доступа / Not allowed" in page.inner_text("h1")
    page.context.clear_cookies()
    log_in(page, live_server, "adam")  # admin: devices and accounts, no evidence
    assert page.url == f"{live_server.url}/review/fleet"
    row = page.locator(f'tr.device[data-device="{scene.device_id}"]')
    assert row.count() == 1, "every registered device has its row"
    page.goto(stop_url(live_server, scene))
    assert "Нет доступа / Not allowed" in page.inner_text("h1")
    response = page.request.get(f"{live_server.url}/api/video/segments/{scene.device_id}/1/content")
    assert response.status == 403, "an admin does not play footage"
