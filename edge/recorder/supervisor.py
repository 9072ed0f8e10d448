"""Watchdog of the recorder process: restarts it within seconds when it dies or stops reporting.

The recorder writes its status file every second; a process that exited, or whose status file is older than
``stale_after`` seconds (hung), is killed and started again. Each restart is logged; the recorder itself
records the gap and its cause when it repairs at start. A crash in video never touches payments: this is a
separate process tree.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from core.structured_log import log_event
from edge.recorder.recorder import STATUS_FILE

log = logging.getLogger(__name__)


def recorder_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "edge.recorder.process", *args]


class RecorderSupervisor:
    def __init__(
        self,
        command: Sequence[str],
        directory: Path,
        poll_seconds: float = 0.2,
        restart_delay: float = 0.3,
        stale_after: float = 10.0,
    ) -> None:
        self.command = list(command)
        self.directory = directory
        self.poll_seconds = poll_seconds
        self.restart_delay = restart_delay
        self.stale_after = stale_after
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started = threading.Event()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self.process.pid if self.process else None

    def _spawn(self) -> None:
        with self._lock:
            self.process = subprocess.Popen(self.command, start_new_session=True)
            self._spawned_at = time.monotonic()
        log_event(log, "recorder.started", pid=self.process.pid, restarts=self.restarts)
        self.started.set()

    def _stale(self) -> bool:
        try:
            age = time.time() - (self.directory / STATUS_FILE).stat().st_mtime
        except OSError:
            return False
        return age > self.stale_after and time.monotonic() - self._spawned_at > self.stale_after

    def run(self, stop: threading.Event) -> None:
        self._spawn()
        try:
            while not stop.wait(self.poll_seconds):
                assert self.process is not None
                code = self.process.poll()
                if code is None and self._stale():
                    log_event(log, "recorder.hung", pid=self.process.pid)
                    self.process.kill()
                    code = self.process.wait()
                if code is not None:
                    log_event(log, "recorder.died", pid=self.process.pid, returncode=code)
                    time.sleep(self.restart_delay)
                    self.restarts += 1
                    self._spawn()
        finally:
            self._terminate()

    def _terminate(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, 9)
            process.wait()
