"""The status bar on every screen: recording (no control to stop it) and the hours of storage left, battery and
charging, the GPS fix and its age, sync (records pending, age of the last ack), upload progress when docked,
the card terminal and the printer. A problem is shown in red with what to do.

Every reading is cheap: the recorder's status file, the power-supply folder, two indexed queries, and the
terminal's and printer's last answers as the payment desk keeps them (the bar never talks to a device).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.manifest import parse_utc
from edge.config import EdgeConfig
from edge.officer_app.i18n import Translator
from edge.recorder.position import published_fix
from edge.recorder.recorder import read_status
from edge.sync.outbox import ACKED, PENDING, OutboxRecord
from edge.upload.uploader import upload_progress
from hardware.power import read_power_state

Level = Literal["ok", "warn", "problem"]
LOW_BATTERY = 20


@dataclass(frozen=True)
class StatusItem:
    key: str
    level: Level
    text: str


@dataclass(frozen=True)
class DeviceReadiness:
    """What the payment desk last learnt of the terminal and the printer (``state`` ready | problem |
    busy | unknown), with when."""

    terminal_state: str
    terminal_text: str
    terminal_at: datetime | None
    printer_state: str  # ready | near_end | problem | unknown
    printer_reason: str
    printer_at: datetime | None


PRINTER_TODO = {
    "paper end": "status.todo_paper",
    "cover open": "status.todo_cover",
    "printer error": "status.todo_restart_printer",
    "offline": "status.todo_printer_power",
}


class StatusBoard:
    def __init__(self, config: EdgeConfig, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.config = config
        self.sessions = sessions
        self.clock = clock

    def items(self, t: Translator, readiness: DeviceReadiness) -> list[StatusItem]:
        now = self.clock.now()
        recorder = read_status(self.config.recording_dir)
        out = [self._recorder(t, recorder, now), self._battery(t)]
        out.append(self._gps(t, recorder, now))
        out += self._sync_and_upload(t, now)
        out += self._devices(t, readiness)
        return out

    def _recorder(self, t: Translator, status: dict[str, object] | None, now: datetime) -> StatusItem:
        if not self.config.recorder.enabled:
            return StatusItem("recorder", "problem", t("status.recorder_off"))
        updated = status.get("updated_utc") if status else None
        try:
            at = parse_utc(str(updated), "updated_utc") if isinstance(updated, str) else None
        except ValueError:
            at = None
        if status is None or at is None or now - at > timedelta(seconds=self.config.officer.recorder_stale_s):
            return StatusItem("recorder", "problem", t("status.recorder_down"))
        hours = status.get("hours_left")
        shown = f"{hours:.1f}" if isinstance(hours, int | float) else "?"
        if status.get("state") != "recording":
            return StatusItem("recorder", "problem", t("status.recorder_paused", hours=shown))
        if status.get("storage_low"):
            return StatusItem("recorder", "problem", t("status.recording_low", hours=shown))
        return StatusItem("recorder", "ok", t("status.recording", hours=shown))

    def _battery(self, t: Translator) -> StatusItem:
        power = read_power_state(self.config.power.sysfs)
        pct = power.battery_percent
        if pct is None:
            if power.on_charger:
                return StatusItem("battery", "ok", t("status.on_charger"))
            return StatusItem("battery", "warn", t("status.battery_unknown"))
        if power.on_charger or power.battery_status == "Charging":
            return StatusItem("battery", "ok", t("status.battery_charging", pct=pct))
        if pct < LOW_BATTERY:
            return StatusItem("battery", "problem", t("status.battery_low", pct=pct))
        return StatusItem("battery", "ok", t("status.battery", pct=pct))

    def _gps(self, t: Translator, status: dict[str, object] | None, now: datetime) -> StatusItem:
        fix = published_fix(status)
        if fix is None:
            return StatusItem("gps", "warn", t("status.gps_none"))
        age = fix.age(now)
        if age > timedelta(seconds=self.config.gps.stop_max_age_s):
            return StatusItem("gps", "warn", t("status.gps_stale", age=t.age(age)))
        return StatusItem("gps", "ok", t("status.gps_fix", age=t.age(age)))

    def _sync_and_upload(self, t: Translator, now: datetime) -> list[StatusItem]:
        with self.sessions() as s:
            pending = int(
                s.scalar(select(func.count()).select_from(OutboxRecord).where(OutboxRecord.state == PENDING))
                or 0
            )
            last_ack = s.scalar(
                select(OutboxRecord.acked_at)
                .where(OutboxRecord.state == ACKED)
                .order_by(OutboxRecord.seq.desc())
                .limit(1)
            )
            docked = read_power_state(self.config.power.sysfs).on_charger
            upload = upload_progress(s) if docked else None
        if last_ack is None:
            sync = StatusItem("sync", "warn" if pending else "ok", t("status.sync_never", n=pending))
        else:
            age = now - last_ack
            level: Level = "warn" if pending and age > timedelta(hours=1) else "ok"
            sync = StatusItem("sync", level, t("status.sync", n=pending, age=t.age(age)))
        out = [sync]
        if upload is not None:
            if upload.pending_segments:
                pct = int(upload.fraction * 100)
                out.append(StatusItem("upload", "ok", t("status.upload", pct=pct, n=upload.pending_segments)))
            else:
                out.append(StatusItem("upload", "ok", t("status.upload_done")))
        return out

    def _devices(self, t: Translator, r: DeviceReadiness) -> list[StatusItem]:
        if r.terminal_state == "ready":
            terminal = StatusItem("terminal", "ok", t("status.terminal_ready"))
        elif r.terminal_state == "busy":
            terminal = StatusItem("terminal", "ok", t("status.terminal_busy"))
        elif r.terminal_state == "unknown":
            terminal = StatusItem("terminal", "warn", t("status.terminal_unknown"))
        else:
            terminal = StatusItem("terminal", "problem", t("status.terminal_problem", why=r.terminal_text))
        if r.printer_state == "ready":
            printer = StatusItem("printer", "ok", t("status.printer_ready"))
        elif r.printer_state == "near_end":
            printer = StatusItem("printer", "warn", t("status.printer_near_end"))
        elif r.printer_state == "unknown":
            printer = StatusItem("printer", "warn", t("status.printer_unknown"))
        else:
            todo = t(PRINTER_TODO.get(r.printer_reason, "status.todo_printer_power"))
            printer = StatusItem(
                "printer", "problem", t("status.printer_problem", why=r.printer_reason, todo=todo)
            )
        return [terminal, printer]
