"""Watchdog of the recorder process: restarts it within seconds when it dies or stops reporting.

The recorder writes its status file every second; a process that exited, or whose status file is older than
``stale_after`` seconds (hung), is killed and started again. Each restart is logged; the recorder itself
records the gap and its cause when it repairs at start. A crash in video never touches payments: this is a
separate process tree.
The recorder ends with the watchdog's process (a parent-death signal, ``core.process_stop``). While another
recorder holds the folder's lock (one still closing its last segment after its own supervisor died, or one
started by hand) no recorder is started: the watchdog waits for the lock and never starts a second one.
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

from core.process_stop import child_env
from core.structured_log import log_event
from edge.folder_lock import FolderLock
from edge.recorder.process import EXIT_FOLDER_LOCKED, LOCK_FILE
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
            # its own session: a Ctrl-C on the terminal reaches the watchdog, which stops the recorder in order
            self.process = subprocess.Popen(self.command, start_new_session=True, env=child_env())
            self._spawned_at = time.monotonic()
        log_event(log, "recorder.started", pid=self.process.pid, restarts=self.restarts)
        self.started.set()

    def _stale(self) -> bool:
        try:
            age = time.time() - (self.directory / STATUS_FILE).stat().st_mtime
        except OSError:
            return False
        return age > self.stale_after and time.monotonic() - self._spawned_at > self.stale_after

    def _wait_for_folder(self, stop: threading.Event) -> bool:
        """Wait while another process holds the folder's lock; False if ``stop`` came first."""
        lock = FolderLock(self.directory, LOCK_FILE, "recorder")
        logged: int | None = None
        while (holder := lock.held_by_other()) is not None:
            if holder != logged:
                log_event(log, "recorder.folder_locked", dir=str(self.directory), holder=holder or None)
                logged = holder
            if stop.wait(self.poll_seconds):
                return False
        return True

    def _watch(self, stop: threading.Event) -> int | None:
        """Watch the running recorder until it exits (its return code) or ``stop`` is set (None)."""
        process = self.process
        assert process is not None
        while not stop.wait(self.poll_seconds):
            code = process.poll()
            if code is None and self._stale():
                log_event(log, "recorder.hung", pid=process.pid)
                process.kill()
                code = process.wait()
            if code is not None:
                return code
        return None

    def run(self, stop: threading.Event) -> None:
        try:
            while self._wait_for_folder(stop):
                self._spawn()
                code = self._watch(stop)
                if code is None:
                    break
                assert self.process is not None
                if code == EXIT_FOLDER_LOCKED:  # another recorder took the folder first: wait for it again
                    continue
                log_event(log, "recorder.died", pid=self.process.pid, returncode=code)
                if stop.wait(self.restart_delay):
                    break
                self.restarts += 1
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
