"""The demo runs the whole system: a traffic stop is paid by card, both receipts print, the payment syncs to
the server, the receipt's QR verifies there as genuine and synced, and Ctrl-C, pressed twice, stops everything
cleanly: no process it started is left and no port is still open."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from demo_run import start_demo


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return dict(json.load(resp))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_takes_a_payment_prints_syncs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    demo = start_demo(demo_dir)
    try:
        demo.read_until_ready()
        text = demo.text
        server = re.search(r"server HTTP\s+(http://\S+)", text)
        device = re.search(r"device HTTP\s+(http://\S+)/status", text)
        assert server and device, text
        assert _get_json(server.group(1) + "/healthz")["checks"] == {
            "database": "ok",
            "ingest ingest-0": "ok",
        }
        assert _get_json(device.group(1) + "/healthz")["device"] == "DEV-0001"

        # the scripted stop: reduced fine computed, paid by card, two receipts confirmed by the printer
        assert "reduced 10\u00a0812.50 ₸" in text, text
        assert re.search(r"paid: protocol DEMO-\S+ 10\u00a0812.50 ₸ card 4\*{11}1014", text), text
        assert "receipt copy 1: CONFIRMED" in text and "receipt copy 2: CONFIRMED" in text, text
        receipts = sorted((demo_dir / "printer").glob("receipt-*.txt"))
        assert len(receipts) == 2 and len(list((demo_dir / "printer").glob("receipt-*.png"))) == 2

        # the officer app: the demo officer signs in with the printed PIN and sees the stop paid
        app = re.search(r"officer app\s+(http://\S+)/\s+\(badge (\S+), PIN (\d+);", text)
        assert app, text
        with httpx.Client(base_url=app.group(1), follow_redirects=True, timeout=10) as officer:
            form = officer.get("/")
            assert "/signin" in str(form.url)
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token
            shift = officer.post("/signin", data={"badge": app.group(2), "pin": app.group(3), "csrf": token.group(1),
                                                  "next": "/shift"})  # fmt: skip
            assert shift.status_code == 200 and str(shift.url).endswith("/shift"), shift.text[-500:]
            assert 'data-state="paid"' in shift.text and "DEMO-" in shift.text

        # every record reaches the server: the device's outbox drains (freed only by server-signed acks)
        deadline = time.monotonic() + 60
        while _get_json(device.group(1) + "/status")["outbox_pending"] != 0:
            assert time.monotonic() < deadline, "outbox did not drain"
            time.sleep(0.5)

        # the QR on the driver's copy verifies on the server, against the synced payment
        qr = re.search(r"\[QR: (http://\S+?)\]", receipts[0].read_text(encoding="utf-8"))
        assert qr, receipts[0].read_text(encoding="utf-8")
        verdict = _get_json(qr.group(1) + "?format=json")
        assert verdict["genuine"] is True and verdict["synced"] is True, verdict

        # the server knows the protocol is paid, and has heard the device's status
        with sqlite3.connect(demo_dir / "server" / "server.db") as db:
            assert db.execute("SELECT status FROM protocol").fetchall() == [("paid",)]
            assert db.execute("SELECT count(*) FROM payment").fetchone() == (1,)
            assert db.execute("SELECT count(*) FROM sync_device_status").fetchone()[0] >= 1

        # Ctrl-C, and again while the demo stops its children
        demo.proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        demo.proc.send_signal(signal.SIGINT)
        rest = demo.rest_of_output(timeout=90)
        assert demo.proc.returncode == 0, rest
        assert "demo stopped" in rest
        assert demo.left_behind() == []
        assert demo.missing_stop_logs() == []
    finally:
        demo.cleanup()
