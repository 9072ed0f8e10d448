"""How much recording time is left on the disk, and what to do when it runs out.

Policy (evidence first): recorded footage that is not confirmed uploaded is **never deleted or overwritten**
to make room. Below ``warn_hours`` of space the recorder raises a warning (log, status, synced record).
Below ``reserve_bytes`` it closes the current segment cleanly (so it is complete, hashed and chained),
records a ``disk_full`` gap and waits; it resumes by itself once uploads free space (hysteresis: twice the
reserve). The reserve keeps room for the manifest, the database and the segment being closed, so a full
disk never leaves a torn or unchained segment behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FreeSpaceProbe = Callable[[Path], int]


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class StorageStatus:
    free_bytes: int
    hours_left: float
    low: bool
    full: bool


class StoragePolicy:
    def __init__(
        self,
        directory: Path,
        bytes_per_hour: float = 1.2e9,
        warn_hours: float = 2.0,
        reserve_bytes: int = 64 * 1024 * 1024,
        probe: FreeSpaceProbe = disk_free_bytes,
    ) -> None:
        if bytes_per_hour <= 0 or reserve_bytes < 0:
            raise ValueError("bytes_per_hour must be positive and reserve_bytes not negative")
        self.directory = directory
        self.bytes_per_hour = bytes_per_hour
        self.warn_hours = warn_hours
        self.reserve_bytes = reserve_bytes
        self._probe = probe
        self._full = False

    def observe_rate(self, size: int, seconds: float) -> None:
        """Refine the bytes-per-hour estimate from a closed segment (moving average)."""
        if seconds >= 1 and size > 0:
            self.bytes_per_hour = 0.8 * self.bytes_per_hour + 0.2 * (size / seconds * 3600)

    def check(self) -> StorageStatus:
        free = self._probe(self.directory)
        usable = max(0, free - self.reserve_bytes)
        hours = usable / self.bytes_per_hour
        if self._full:
            self._full = free < 2 * self.reserve_bytes
        else:
            self._full = free < self.reserve_bytes
        return StorageStatus(free, hours, low=hours < self.warn_hours, full=self._full)
