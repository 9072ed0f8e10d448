"""``deploy/device/officer-kiosk`` waits for the device process and opens the officer app in Chromium (run here
headless, dumping the page it opened); without a device process it gives up with a message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from officer_rig import OfficerRig, free_port

from tests.browser_support import CHROMIUM, require_chromium

pytestmark = pytest.mark.browser
LAUNCHER = Path(__file__).resolve().parents[2] / "deploy" / "device" / "officer-kiosk"


def _launch(url: str, tmp_path: Path, wait: int = 30) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATROLKIT_APP_URL": url,
        "PATROLKIT_KIOSK_BROWSER": str(CHROMIUM),
        "PATROLKIT_KIOSK_PROFILE": str(tmp_path / "profile"),
        "PATROLKIT_KIOSK_WAIT": str(wait),
        "PATROLKIT_KIOSK_EXTRA": "--headless=new --dump-dom --no-sandbox --disable-gpu --disable-dev-shm-usage",
    }
    return subprocess.run([str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=90)


def test_launcher_opens_the_officer_app_once_the_device_answers(rig: OfficerRig, tmp_path: Path) -> None:
    require_chromium()
    done = _launch(f"{rig.url}/", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'action="/signin"' in done.stdout and 'inputmode="numeric"' in done.stdout


def test_launcher_gives_up_when_no_device_process_answers(tmp_path: Path) -> None:
    done = _launch(f"http://127.0.0.1:{free_port()}/", tmp_path, wait=1)
    assert done.returncode == 1 and "does not answer" in done.stderr
