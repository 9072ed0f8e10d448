"""Keeps the ingest workers of a process running and says whether they are: a watchdog thread restarts a
worker whose thread ended (``IngestWorker.ensure_running``) every ``check_s`` seconds, and ``health()`` gives
each worker's state for ``/healthz`` (503 while any is down or not keeping up)."""

from __future__ import annotations

import logging
import threading

from server.ingest.worker import IngestWorker

log = logging.getLogger(__name__)


class IngestSupervisor:
    """The workers of this process and their watchdog; ``stop()`` stops both."""

    def __init__(self, workers: list[IngestWorker], check_s: float = 1.0) -> None:
        self.workers = workers
        self._check_s = check_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ingest-watchdog", daemon=True)

    def start(self) -> IngestSupervisor:
        self._thread.start()
        return self

    def check(self) -> int:
        """Restart every worker whose thread ended; return how many were."""
        return sum(w.ensure_running() for w in self.workers)

    def health(self) -> dict[str, str]:
        """Each worker's client id -> ``ok`` or why not (``IngestWorker.health``)."""
        return {w.settings.client_id: w.health() for w in self.workers}

    def _watch(self) -> None:
        while not self._stop.wait(self._check_s):
            try:
                self.check()
            except Exception:  # the watchdog itself must not end
                log.exception("ingest.watchdog_failed", extra={"event": "ingest.watchdog_failed"})

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for w in self.workers:
            w.stop()
