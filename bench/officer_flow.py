"""Benchmark: one typical traffic stop in the officer app against the same stop on the command line.

Hardware: the ZVT terminal simulator on a pseudo-terminal paced like a real 9600-baud 8N2 cable (the card is
presented and the PIN entered at once), the ESC/POS printer simulator as a network printer (TCP 9100, GS ( H
confirmation). The device is ``patrol-edge run`` as its own process (recorder, upload and sync off, so only the
stop is measured).

- **Baseline** (measured first, the device process not running): ``patrol-edge stop open`` then
  ``patrol-edge pay --yes`` (both receipts printed and confirmed), wall time of the two commands.
- **Value**: Playwright drives Debian's Chromium through the app: New stop → IIN, name, plate typed → the
  article tapped → the driver's screen → the driver agrees → Pay → both receipts printed (copy 2 shown
  printed), wall time from the tap on "New stop".

Also reported: the taps and keystrokes the stop needed (aim: at most 15 taps besides typing the IIN, name and
plate) and the device's own time per page and request (its ``Server-Timing``; p95 under 50 ms; the live stream
excluded). Median of ``ROUNDS`` stops each. Target: UI wall time at most 1.25x the command line's. The last line
is the JSON summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from core.clock import SystemClock
from hardware.printer.profiles import profile_by_name
from simulators.demo import free_port
from simulators.printer.server import TcpPrinterServer
from simulators.printer.store import ReceiptStore
from simulators.printer.virtual_printer import VirtualPrinter
from simulators.zvt.lines import PacedChannel, PtyLine
from simulators.zvt.terminal import SimulatedTerminal

ROUNDS = 5
TARGET = 1.25
TAPS_AIM = 15
PAGE_P95_MS = 50.0
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
IIN, NAME, PLATE = "850101300124", "Жанболатов Арман", "123ABC01"


def edge(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "patrol-edge"), "--config", str(config), *args], input=stdin, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


def cli_stop(config: Path, number: str) -> float:
    start = time.perf_counter()
    opened = edge(config, "stop", "open", number, "--article", "592.1", "--driver-name", NAME, "--iin", IIN,
                  "--plate", PLATE, "--officer", "B-1")  # fmt: skip
    paid = edge(config, "pay", number, "--officer", "B-1", "--yes")
    wall = time.perf_counter() - start
    if opened.returncode != 0 or paid.returncode != 0:
        raise SystemExit(f"command line stop failed: {opened.stdout}{opened.stderr}{paid.stdout}{paid.stderr}")
    return wall


class Counted:
    """A page whose taps and keystrokes are counted."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.taps = 0
        self.keys = 0

    def tap(self, selector: str) -> None:
        self.taps += 1
        self.page.click(selector)

    def type(self, selector: str, text: str) -> None:
        self.tap(selector)
        self.keys += len(text)
        self.page.keyboard.type(text)


def ui_stop(page: Any) -> tuple[float, int, int]:
    c = Counted(page)
    start = time.perf_counter()
    c.tap("header nav a[href='/stops/new']")
    c.type("#driver_iin", IIN)
    c.type("#driver_name", NAME)
    c.type("#vehicle_plate", PLATE)
    c.tap("button.article-button[value='592.1']")
    c.tap("#to-driver")
    c.tap("#agree")
    c.tap("#pay")
    page.wait_for_selector("#copy-2[data-state='printed']", timeout=60_000)
    wall = time.perf_counter() - start
    taps_besides_typing = c.taps - 3  # the three taps into the IIN, name and plate fields
    c.tap("#done")  # back to a new stop: one more tap, counted in the aim
    return wall, taps_besides_typing + 1, c.keys


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clock = SystemClock()
        line = PtyLine(root / "zvt0")
        terminal = SimulatedTerminal(line, clock, channel_wrapper=lambda ch: PacedChannel(ch, 9600)).start()
        profile = profile_by_name("kz1048-80mm")
        printer = TcpPrinterServer(VirtualPrinter(profile, on_receipt=ReceiptStore(profile).add, clock=clock), port=0)
        printer.start()
        port = free_port()
        config = root / "edge.toml"
        config.write_text(
            f'[device]\nid = "DEV-BENCH"\ndata_dir = "{root / "device"}"\n[terminal]\nurl = "{line.path}"\n'
            f'[printer]\nurl = "{printer.url}"\n[http]\nport = {port}\n'
            "[recorder]\nenabled = false\n[upload]\nenabled = false\n[mqtt]\nenabled = false\n",
            encoding="utf-8",
        )
        added = edge(config, "officer", "add", "B-1", "Серікбаев Әділет", "--pin", stdin="1234\n")
        assert added.returncode == 0, added.stdout + added.stderr
        cli_stop(config, "WARM-CLI")  # the first run migrates the database and fills caches
        cli = [cli_stop(config, f"CLI-{i}") for i in range(ROUNDS)]
        for i, wall in enumerate(cli):
            print(f"command line stop {i + 1}: {wall:.2f} s")

        log = (root / "device.log").open("wb")
        device = subprocess.Popen([str(BIN / "patrol-edge"), "--config", str(config), "run"], stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        timings: list[float] = []
        by_path: dict[str, list[float]] = {}
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the device process did not start")
                time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()

                def took(response: Any) -> None:
                    path = response.url.split("?")[0]
                    if "/live" in path or "/static/" in path:
                        return
                    for part in (response.headers.get("server-timing") or "").split(","):
                        if part.strip().startswith("app;dur="):
                            timings.append(float(part.split("=")[1]))
                            by_path.setdefault(f"{response.request.method} {path.split(url)[-1]}", []).append(timings[-1])

                page.on("response", took)
                page.goto(f"{url}/signin?next=/shift")
                page.fill("#badge", "B-1")
                page.fill("#pin", "1234")
                page.click("button.primary")
                page.wait_for_url("**/shift")
                ui_stop(page)  # warm-up: templates compiled, the line opened once
                page.goto(f"{url}/shift")
                timings.clear()
                by_path.clear()
                ui: list[tuple[float, int, int]] = []
                for _ in range(ROUNDS):
                    page.goto(f"{url}/shift")
                    ui.append(ui_stop(page))
                browser.close()
        finally:
            os.killpg(device.pid, signal.SIGTERM)
            device.wait(30)
            log.close()
            terminal.stop()
            line.close()
            printer.stop()
        for i, (wall, taps, keys) in enumerate(ui):
            print(f"officer app stop {i + 1}: {wall:.2f} s, {taps} taps besides typing, {keys} keystrokes")
        value = statistics.median(w for w, _, _ in ui)
        baseline = statistics.median(cli)
        ratio = value / baseline
        taps = max(t for _, t, _ in ui)
        keys = max(k for _, _, k in ui)
        p95 = statistics.quantiles(timings, n=20)[18] if len(timings) >= 20 else max(timings)
        print(f"device time per page/request: {len(timings)} answers, median {statistics.median(timings):.1f} ms, "
              f"p95 {p95:.1f} ms, max {max(timings):.1f} ms (target p95 < {PAGE_P95_MS:g} ms)")  # fmt: skip
        for path, ms in sorted(by_path.items(), key=lambda kv: -max(kv[1])):
            print(f"  {path:<32} n={len(ms)} median {statistics.median(ms):6.1f} ms  max {max(ms):6.1f} ms")
        print(f"taps besides typing the IIN, name and plate: {taps} (aim <= {TAPS_AIM}); keystrokes: {keys}")
        print(f"UI {value:.2f} s vs command line {baseline:.2f} s: ratio {ratio:.3f} (target <= {TARGET})")
        print(
            json.dumps(
                {
                    "bench": "officer_flow",
                    "value": round(value, 3),
                    "unit": "s",
                    "baseline": round(baseline, 3),
                    "ratio": round(ratio, 3),
                    "target": TARGET,
                    "pass": bool(ratio <= TARGET and taps <= TAPS_AIM and p95 < PAGE_P95_MS),
                    "taps": taps,
                    "keystrokes": keys,
                    "page_p95_ms": round(p95, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
