"""Charger and battery simulator: writes a folder shaped like ``/sys/class/power_supply`` (an ``AC`` supply of
type Mains and a ``BAT0`` battery) that ``hardware.power`` reads, so the real and simulated device differ only
by the configured path."""

from __future__ import annotations

import os
from pathlib import Path

from hardware.power import PowerState, read_power_state


def _write(path: Path, value: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)


class PowerSimulator:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "AC").mkdir(parents=True, exist_ok=True)
        (root / "BAT0").mkdir(parents=True, exist_ok=True)
        if not (root / "AC" / "type").exists():
            _write(root / "AC" / "type", "Mains")
            _write(root / "AC" / "online", "0")
            _write(root / "BAT0" / "type", "Battery")
            _write(root / "BAT0" / "capacity", "80")
            _write(root / "BAT0" / "status", "Discharging")

    def dock(self) -> None:
        _write(self.root / "AC" / "online", "1")
        self._update_status()

    def undock(self) -> None:
        _write(self.root / "AC" / "online", "0")
        self._update_status()

    def set_battery(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"battery level {percent} is not 0..100")
        _write(self.root / "BAT0" / "capacity", str(percent))
        self._update_status()

    def _update_status(self) -> None:
        state = read_power_state(self.root)
        if state.on_charger:
            status = "Full" if state.battery_percent == 100 else "Charging"
        else:
            status = "Discharging"
        _write(self.root / "BAT0" / "status", status)

    def state(self) -> PowerState:
        return read_power_state(self.root)
