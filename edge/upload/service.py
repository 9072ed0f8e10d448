"""The upload loop of the device: watches the power state and runs the uploader while docked.

Docking (charger online) starts a run within ``poll_seconds``; unplugging makes the running upload pause
between chunks; a busy or unreachable server is retried after ``retry_seconds``, or after the time a busy
server asked for (its Retry-After).
"""

from __future__ import annotations

import threading
from pathlib import Path

from edge.upload.uploader import RunResult, Uploader
from hardware.power import read_power_state


class DockedUploadService:
    def __init__(
        self, uploader: Uploader, power_root: Path, poll_seconds: float = 2.0, retry_seconds: float = 30.0
    ):
        self.uploader = uploader
        self.power_root = power_root
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.last_result: str | None = None

    def docked(self) -> bool:
        return read_power_state(self.power_root).on_charger

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.docked():
                stop.wait(self.poll_seconds)
                continue
            result = self.uploader.run_once(should_continue=lambda: not stop.is_set() and self.docked())
            self.last_result = result.stopped_because
            stop.wait(self.pause_after(result))

    def pause_after(self, result: RunResult) -> float:
        """How long to wait before the next run: a poll after a finished or paused run, the server's
        Retry-After when it was busy and said one, else ``retry_seconds``."""
        if result.stopped_because in ("done", "undocked"):
            return self.poll_seconds
        if result.stopped_because == "busy" and result.retry_after is not None:
            return result.retry_after
        return self.retry_seconds
