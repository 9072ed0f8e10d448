"""GPS as the recorder sees it: the receiver's latest reading, the track of each segment that goes into its
manifest entry, and the ``gps_fix`` part of the status file through which other processes (``patrol-edge stop
open``) learn the device's position.

The recorder publishes the last fix it has with the wall-clock time it was read (``read_utc``); whoever uses
it judges freshness against its own limit (``fresh_fix``), so a silent receiver or a dead recorder is never
taken for a current position.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.manifest import ManifestError, SegmentGps, format_utc, parse_utc
from core.structured_log import log_event
from hardware.gps import GpsReceiver

log = logging.getLogger(__name__)
COORDINATE_DECIMALS = 7  # ~1 cm; keeps the signed JSON short and its float text stable


@dataclass(frozen=True)
class GpsReading:
    """The receiver's latest fix as the recorder read it; ``age_s`` = seconds since the receiver got it."""

    latitude: float
    longitude: float
    fix_utc: datetime | None
    quality: int | None
    satellites: int | None
    age_s: float


GpsSource = Callable[[], GpsReading | None]  # the last fix however old; None = there has been none


def no_gps() -> GpsReading | None:
    return None


def receiver_source(receiver: GpsReceiver) -> GpsSource:
    """The recorder's view of a running ``GpsReceiver``: its last fix, however old, with that age."""

    def reading() -> GpsReading | None:
        latest = receiver.latest()
        if latest is None:
            return None
        fix, age = latest
        return GpsReading(fix.latitude, fix.longitude, fix.utc, fix.quality, fix.satellites, age)

    return reading


Position = tuple[float, float]


def rounded(latitude: float, longitude: float) -> Position:
    return float(round(latitude, COORDINATE_DECIMALS)), float(round(longitude, COORDINATE_DECIMALS))


class SegmentTrack:
    """The current position (or None) of each frame written to one segment, summed up when it closes."""

    def __init__(self, fps: int) -> None:
        self.fps = fps
        self._positions: list[Position | None] = []

    def add(self, position: Position | None) -> None:
        self._positions.append(position)

    def summary(self, frames: int) -> SegmentGps:
        """Start and end position and seconds with a fix over the first ``frames`` frames (a repaired segment
        keeps fewer frames than were written)."""
        kept = self._positions[:frames]
        kept += [None] * (frames - len(kept))
        seconds = math.ceil(frames / self.fps)
        fix_seconds = sum(
            1 for s in range(seconds) if any(p is not None for p in kept[s * self.fps : (s + 1) * self.fps])
        )
        start = kept[0] if kept else None
        end = kept[-1] if kept else None
        return SegmentGps(
            start[0] if start else None,
            start[1] if start else None,
            end[0] if end else None,
            end[1] if end else None,
            fix_seconds,
            seconds,
        )


def status_fix(reading: GpsReading | None, now: datetime) -> dict[str, object] | None:
    """The ``gps_fix`` object of the recorder status file (None = no fix since the recorder started)."""
    if reading is None:
        return None
    lat, lon = rounded(reading.latitude, reading.longitude)
    return {
        "lat": lat,
        "lon": lon,
        "fix_utc": format_utc(reading.fix_utc) if reading.fix_utc is not None else None,
        "quality": reading.quality,
        "satellites": reading.satellites,
        "read_utc": format_utc(now - timedelta(seconds=reading.age_s)),
    }


@dataclass(frozen=True)
class PublishedFix:
    """A fix read back from the recorder status file; ``read_at`` is when the receiver delivered it."""

    latitude: float
    longitude: float
    fix_utc: datetime | None
    quality: int | None
    satellites: int | None
    read_at: datetime

    def age(self, now: datetime) -> timedelta:
        return now - self.read_at


def _number(data: Mapping[str, object], name: str, limit: float) -> float:
    value = data.get(name)
    if type(value) is not float and type(value) is not int:
        raise ValueError(f"{name} is not a number")
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{name} {value} is out of range")
    return float(value)


def _optional_int(data: Mapping[str, object], name: str) -> int | None:
    value = data.get(name)
    if value is not None and type(value) is not int:
        raise ValueError(f"{name} is not an integer")
    return value


def published_fix(status: Mapping[str, object] | None) -> PublishedFix | None:
    """The fix in a recorder status (``read_status``), or None when there is none or it is malformed (logged)."""
    if status is None:
        return None
    data = status.get("gps_fix")
    if data is None:
        return None
    try:
        if not isinstance(data, Mapping):
            raise ValueError("gps_fix is not an object")
        fix_utc = data.get("fix_utc")
        read_utc = data.get("read_utc")
        if not isinstance(read_utc, str) or (fix_utc is not None and not isinstance(fix_utc, str)):
            raise ValueError("read_utc/fix_utc is not a UTC time")
        return PublishedFix(
            _number(data, "lat", 90),
            _number(data, "lon", 180),
            parse_utc(fix_utc, "fix_utc") if fix_utc is not None else None,
            _optional_int(data, "quality"),
            _optional_int(data, "satellites"),
            parse_utc(read_utc, "read_utc"),
        )
    except (ValueError, ManifestError) as exc:
        log_event(log, "gps.status_fix_unreadable", reason=str(exc))
        return None


FUTURE_TOLERANCE = timedelta(seconds=2)  # a fix "read" later than now means the clock moved: not trusted


def fresh_fix(fix: PublishedFix | None, now: datetime, max_age: timedelta) -> PublishedFix | None:
    """``fix`` if it was read at most ``max_age`` before ``now``; otherwise None (never a guessed position)."""
    if fix is None:
        return None
    age = fix.age(now)
    if age > max_age or age < -FUTURE_TOLERANCE:
        return None
    return fix
