"""The background verifier: every ``[review] verify_interval_s`` it verifies again the ``verify_batch`` stored
segments checked longest ago (``server.video.integrity.verify_round``), so that rot on the disk is found
without anyone asking. Each result is kept (``segment_verification``) and the stop page shows the latest.

One thread of its own; ``tick()`` runs a round when one is due (tests call it with a ``FakeClock``); a round
that fails is logged and tried again next time. ``stop()`` ends the thread.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from server.video.integrity import Verdict, verify_round
from server.video.storage import VideoStore

log = logging.getLogger(__name__)


class BackgroundVerifier:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: VideoStore,
        interval_s: float,
        batch: int,
        clock: Clock | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the verifier's interval must be positive")
        self.sessions = sessions
        self.store = store
        self.interval_s = interval_s
        self.batch = batch
        self.clock = clock or SystemClock()
        self._last: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.found: Counter[str] = Counter()

    def tick(self) -> bool:
        """Run a round if ``interval_s`` has passed since the last one (or none ran yet)."""
        if self._last is not None and self.clock.monotonic() - self._last < self.interval_s:
            return False
        self._last = self.clock.monotonic()
        results = verify_round(self.sessions, self.store, self.clock.now(), self.batch)
        self.rounds += 1
        counts = Counter(r.verdict.value for r in results)
        self.found.update(counts)
        if counts.get(Verdict.BROKEN.value):
            for r in results:
                if r.verdict is Verdict.BROKEN:
                    log_event(log, "video.verify_broken", device_id=r.device_id, seq=r.seq, reasons=r.text())
        log_event(log, "video.verify_round", checked=len(results), **dict(counts))
        return True

    def start(self) -> BackgroundVerifier:
        self._thread = threading.Thread(target=self._run, name="footage-verifier", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a database or disk hiccup: try again next round
                log_event(log, "video.verify_failed", error=str(exc)[:300])
            self._stop.wait(min(self.interval_s, 5.0))
