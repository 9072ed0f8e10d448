"""GPS simulator: a receiver on a pseudo-terminal that sends NMEA RMC and GGA sentences (valid checksums) along a
moving track, once per ``interval`` seconds. The device opens the pty path exactly as it opens a real
receiver's serial port, so only the configured URL differs."""

from __future__ import annotations

import math
import os
import threading
import time
import tty
from datetime import UTC, datetime
from pathlib import Path

from hardware.gps import format_gga, format_rmc

METRES_PER_DEGREE = 111_320.0


class Track:
    """A straight drive from (``latitude``, ``longitude``) at ``speed_mps`` on ``course_deg`` (0 = north)."""

    def __init__(self, latitude: float, longitude: float, speed_mps: float = 10.0, course_deg: float = 45.0):
        self.latitude = latitude
        self.longitude = longitude
        self.speed_mps = speed_mps
        self.course_deg = course_deg

    def position(self, seconds: float) -> tuple[float, float]:
        distance = self.speed_mps * seconds
        course = math.radians(self.course_deg)
        lat = self.latitude + distance * math.cos(course) / METRES_PER_DEGREE
        lon = self.longitude + distance * math.sin(course) / (
            METRES_PER_DEGREE * max(0.01, math.cos(math.radians(self.latitude)))
        )
        return lat, lon


class GpsSimulator:
    def __init__(self, track: Track, interval: float = 1.0, link: Path | None = None) -> None:
        self.track = track
        self.interval = interval
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.device = os.ttyname(self._slave)
        self.link = link
        if link is not None:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(self.device)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gps-simulator", daemon=True)
        self._t0 = time.monotonic()

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.device

    def sentences(self, now: datetime, seconds: float) -> list[str]:
        lat, lon = self.track.position(seconds)
        knots = self.track.speed_mps * 3600 / 1852
        return [
            format_rmc(now, lat, lon, knots, self.track.course_deg),
            format_gga(now, lat, lon, satellites=9, altitude_m=420.0),
        ]

    def start(self) -> GpsSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        os.close(self._master)
        os.close(self._slave)

    def _loop(self) -> None:
        while not self._stop.is_set():
            seconds = time.monotonic() - self._t0
            data = "".join(s + "\r\n" for s in self.sentences(datetime.now(UTC), seconds)).encode("ascii")
            try:
                os.write(self._master, data)
            except OSError:
                return
            self.sent += 1
            self._stop.wait(self.interval)
