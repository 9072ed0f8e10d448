"""A running `patrol-demo` as the process tests see it: started (directly or through `make demo`), read until it is
ready, with the ports it printed and every process it started, so that a test can stop it and check that nothing
is left."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from process_tree import Proc, alive, descendants, events_named, listening, wait_for

from edge.recorder.recorder import read_status

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
DEMO_ARGS = ["--random-ports", "--dock-after", "-1"]
# what each child logs when it stops (logs/<child>.log)
STOPPED_EVENTS = {
    "server": ["server.stopped"],
    "zvt-terminal": ["zvt_sim.stopped"],
    "printer": ["printer_sim.stopped"],
    "camera": ["camera_sim.stopped"],
    "gps": ["gps_sim.stopped"],
    "device": ["device.stopped", "recorder.stopped"],
}


@dataclass
class RunningDemo:
    proc: subprocess.Popen[str]
    directory: Path
    text: str = ""
    processes: tuple[Proc, ...] = ()
    ports: tuple[int, ...] = ()

    def url(self, name: str) -> str:
        found = re.search(rf"{name}\s+(http://\S+)", self.text)
        assert found, self.text
        return found.group(1)

    def read_until_ready(self, limit: float = 180) -> None:
        """Read its output until it says it runs; then note its ports and every process below it."""
        assert self.proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        self.text = "".join(lines)
        assert "Press Ctrl-C" in self.text, self.text
        self.ports = tuple(int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", self.text))
        assert len(set(self.ports)) >= 7, self.text  # server, broker, device, terminal + API, printer, camera
        wait_for(self._recording, "the device's recorder to record", limit=60)
        self.processes = tuple(descendants(self.proc.pid))
        names = " ".join(" ".join(p.cmdline) for p in self.processes)
        for part in (
            "patrol-server",
            "zvt",
            "printer",
            "camera",
            "gps",
            "patrol-edge",
            "edge.recorder.process",
        ):
            assert part in names, f"{part} is not running: {names}"

    def _recording(self) -> bool:
        status = read_status(self.directory / "device" / "video")
        return bool(status and status.get("state") == "recording")

    def rest_of_output(self, timeout: float) -> str:
        rest, _ = self.proc.communicate(timeout=timeout)
        return rest or ""

    def left_behind(self) -> list[str]:
        """Processes the demo started that are still alive, and ports still listened on."""
        procs = [" ".join(p.cmdline[:4]) for p in self.processes if alive(p)]
        return procs + [f"port {port}" for port in self.ports if listening(port)]

    def wait_until_nothing_left(self, limit: float) -> list[str]:
        deadline = time.monotonic() + limit
        while (left := self.left_behind()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def missing_stop_logs(self) -> list[str]:
        logs = self.directory / "logs"
        return [
            f"{child}: {event}"
            for child, events in STOPPED_EVENTS.items()
            for event in events
            if not events_named(logs / f"{child}.log", event)
        ]

    def cleanup(self) -> None:
        """After a failed test: stop the demo, then kill whatever it left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for p in self.processes:
            if alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)


def start_demo(directory: Path, *extra: str, through_make: bool = False) -> RunningDemo:
    args = ["--dir", str(directory), *DEMO_ARGS, *extra]
    if through_make:
        # the venv is installed already: -o keeps make from reinstalling it; BIN is this interpreter's venv
        argv = [
            "make", "-s", "-C", str(ROOT), "-o", ".venv/.installed-stamp", f"BIN={BIN}", "demo",
            f"DEMO_ARGS={' '.join(args)}",
        ]  # fmt: skip
    else:
        argv = [str(BIN / "patrol-demo"), "run", *args]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a shell's job
    )
    return RunningDemo(proc, directory)
