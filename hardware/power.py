"""Charger and battery state from Linux ``/sys/class/power_supply`` (or any folder shaped like it).

Each supply is a folder with a ``type`` file (``Mains``, ``USB``, ``Battery``...). A Mains or USB supply
with ``online`` = 1 means the device is on its charger; a Battery supply gives ``capacity`` (percent) and
``status`` (Charging, Discharging, Full, Not charging). ``PowerWatcher`` polls and calls back on change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.structured_log import log_event

log = logging.getLogger(__name__)
EXTERNAL_TYPES = {"Mains", "USB", "USB_C", "USB_PD", "USB_DCP", "USB_CDP", "Wireless"}


@dataclass(frozen=True)
class PowerState:
    on_charger: bool
    battery_percent: int | None
    battery_status: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_power_state(root: Path) -> PowerState:
    on_charger = False
    percent: int | None = None
    status = "Unknown"
    try:
        supplies = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        supplies = []
    for supply in supplies:
        kind = _read(supply / "type") or ""
        if kind in EXTERNAL_TYPES and _read(supply / "online") == "1":
            on_charger = True
        elif kind == "Battery":
            capacity = _read(supply / "capacity")
            if capacity is not None and capacity.isdigit():
                percent = min(100, int(capacity))
            status = _read(supply / "status") or status
    return PowerState(on_charger, percent, status)


class PowerWatcher:
    """Polls the power-supply folder and calls ``on_change(state)`` whenever it changes."""

    def __init__(self, root: Path, on_change: Callable[[PowerState], None], interval: float = 1.0) -> None:
        self.root = root
        self.on_change = on_change
        self.interval = interval
        self.state = read_power_state(root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="power-watcher", daemon=True)

    def start(self) -> PowerWatcher:
        self.on_change(self.state)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            state = read_power_state(self.root)
            if state != self.state:
                self.state = state
                log_event(log, "power.changed", on_charger=state.on_charger, battery=state.battery_percent)
                self.on_change(state)
