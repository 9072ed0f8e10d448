"""The fine lifecycle inside ``patrol-server run``: one thread that, every ``[fines.sms] send_every_s``,

1. starts the daily run once ``[fines] run_at`` (local time in ``[fines] timezone``) has passed and that
   day has no finished run yet (also the day before, if the server was down at that hour), and
2. sends the SMS that are due (new ones, and retries after their backoff), and
3. publishes the devices' unpaid-fines list after each daily run and every ``unpaid_dataset_every_s``.

``tick()`` does one round with the clock's time, so tests drive it without waiting. With the SMPP gateway a
receipt listener runs beside it (``SmppReceiptListener``). A failing round is logged and the next one tries
again; nothing in a round can stop the thread.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from server.db.base import transaction
from server.db.fines import FineRun
from server.fines.daily_run import FineWork, RunSettings, run_daily
from server.fines.notifier import NotifySettings, send_due
from server.fines.run_lock import RunBusy
from server.fines.sms_gateway import SmsGateway
from server.fines.unpaid_dataset import publish_unpaid

log = logging.getLogger(__name__)


class FinesScheduler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        work: FineWork,
        gateway: SmsGateway,
        *,
        run_at: str,
        timezone: str,
        every_s: float,
        dataset_every_s: float,
        dataset_jurisdiction: str,
        run_settings: RunSettings = RunSettings(),
        notify: NotifySettings = NotifySettings(),
        clock: Clock | None = None,
    ) -> None:
        self.sessions, self.work, self.gateway = sessions, work, gateway
        hours, minutes = (int(x) for x in run_at.split(":"))
        self.run_at, self.zone = time(hours, minutes), ZoneInfo(timezone)
        self.every_s, self.dataset_every_s, self.jurisdiction = every_s, dataset_every_s, dataset_jurisdiction
        self.run_settings, self.notify = run_settings, notify
        self.clock = clock or SystemClock()
        self._dataset_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fines", daemon=True)
        self.rounds = 0
        self.last_error = ""

    def due_day(self, now: datetime) -> date | None:
        """The day whose daily run should start now, or None."""
        local = now.astimezone(self.zone)
        day = local.date() if local.time() >= self.run_at else local.date() - timedelta(days=1)
        with self.sessions() as session:
            done = session.scalar(select(func.max(FineRun.run_on)).where(FineRun.status == "done"))
        return None if done is not None and done >= day else day

    def tick(self) -> None:
        """One round: the daily run if due, the SMS that are due, the unpaid-fines list if due."""
        ran = False
        day = self.due_day(self.clock.now())
        if day is not None:
            try:
                run_daily(self.sessions, day, self.work, self.clock.now, self.run_settings)
                ran = True
            except RunBusy as exc:
                log_event(log, "fines.run.busy", day=day.isoformat(), detail=str(exc))
        send_due(self.sessions, self.gateway, self.clock.now, self.notify)
        mono = self.clock.monotonic()
        if ran or self._dataset_at is None or mono - self._dataset_at >= self.dataset_every_s:
            with transaction(self.sessions) as session:
                publish_unpaid(session, self.work.signer, self.jurisdiction, self.clock.now())
            self._dataset_at = mono
        self.rounds += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self.last_error = ""
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception(
                    "fines.round_failed", extra={"event": "fines.round_failed", "error": self.last_error}
                )
            self._stop.wait(self.every_s)

    def start(self) -> FinesScheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.gateway.close()
