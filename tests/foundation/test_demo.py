"""The demo starts the server and a device, answers /healthz, and stops cleanly on SIGINT (Ctrl-C)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_demo_starts_serves_health_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "patrol-demo"), "run", "--dir", str(tmp_path / "demo"), "--random-ports"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Press Ctrl-C" in text, text
        server = re.search(r"server HTTP\s+(http://\S+)", text)
        device = re.search(r"device HTTP\s+(http://\S+)/status", text)
        assert server and device, text
        with urllib.request.urlopen(server.group(1) + "/healthz", timeout=5) as resp:
            assert resp.status == 200
            assert json.load(resp)["checks"]["database"] == "ok"
        with urllib.request.urlopen(device.group(1) + "/healthz", timeout=5) as resp:
            assert json.load(resp)["device"] == "DEV-0001"
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "demo stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
