"""GPS receiver over NMEA 0183: parses RMC and GGA sentences (checksum checked) from a serial line.

``parse_sentence`` turns one line into an ``Rmc`` or ``Gga`` or raises ``NmeaError`` naming what was wrong;
``format_rmc``/``format_gga`` write the same sentences (the simulator uses them). ``GpsReceiver`` reads lines
from any pyserial URL (``/dev/ttyACM0``, a pty path, ``socket://``, ``loop://``) on its own thread and keeps the
latest fix: position from RMC/GGA, UTC time and date from RMC, fix quality and satellites from GGA. A fix older
than ``max_age`` seconds counts as none for ``fix()``, so a receiver that went silent never shows a stale position
as current; ``latest()`` gives the last fix whatever its age, with that age, for callers with their own limit.
"""

from __future__ import annotations

import logging
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any

import serial

from core.structured_log import log_event

log = logging.getLogger(__name__)
MAX_SENTENCE = 82  # NMEA 0183: at most 82 characters including "$" and CR LF


class NmeaError(ValueError):
    """A sentence that cannot be used; the message says why."""


@dataclass(frozen=True)
class Rmc:
    """Recommended minimum data: time, date, validity, position, speed and course."""

    talker: str
    utc: datetime | None
    valid: bool
    latitude: float | None
    longitude: float | None
    speed_knots: float | None
    course_deg: float | None


@dataclass(frozen=True)
class Gga:
    """Fix data: time of day, position, fix quality, satellites, HDOP and altitude."""

    talker: str
    utc_time: time | None
    latitude: float | None
    longitude: float | None
    quality: int
    satellites: int | None
    hdop: float | None
    altitude_m: float | None


Sentence = Rmc | Gga


@dataclass(frozen=True)
class GpsFix:
    """The latest known position; ``utc`` is the receiver's time of that fix; ``quality`` is GGA's fix quality
    (1 GPS, 2 DGPS, 4 RTK…; ``None`` until a GGA sentence came)."""

    latitude: float
    longitude: float
    utc: datetime | None
    satellites: int | None = None
    altitude_m: float | None = None
    speed_knots: float | None = None
    quality: int | None = None


def checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    value = 0
    for char in body:
        value ^= ord(char)
    return value


def _with_checksum(body: str) -> str:
    return f"${body}*{checksum(body):02X}"


def _split(line: str | bytes) -> list[str]:
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError as exc:
            raise NmeaError("sentence is not ASCII") from exc
    line = line.strip()
    if not line:
        raise NmeaError("empty line")
    if len(line) > MAX_SENTENCE:
        raise NmeaError(f"sentence is {len(line)} characters long; NMEA allows {MAX_SENTENCE}")
    if not line.startswith("$"):
        raise NmeaError("sentence does not start with '$'")
    if len(line) < 4 or line[-3] != "*":
        raise NmeaError("sentence has no '*hh' checksum")
    body, given = line[1:-3], line[-2:]
    try:
        expected = int(given, 16)
    except ValueError as exc:
        raise NmeaError(f"checksum {given!r} is not hexadecimal") from exc
    if checksum(body) != expected:
        raise NmeaError(f"checksum mismatch: sentence says {given}, content gives {checksum(body):02X}")
    fields = body.split(",")
    if len(fields[0]) != 5 or not fields[0].isalpha():
        raise NmeaError(f"bad address field {fields[0]!r}")
    return fields


def _time(field: str) -> time | None:
    if not field:
        return None
    try:
        hh, mm, ss = int(field[0:2]), int(field[2:4]), float(field[4:])
        micro = round((ss - int(ss)) * 1_000_000)
        return time(hh, mm, int(ss), min(micro, 999_999), tzinfo=UTC)
    except ValueError as exc:
        raise NmeaError(f"bad UTC time {field!r}") from exc


def _date(field: str) -> date | None:
    if not field:
        return None
    try:
        yy = int(field[4:6])  # two-digit year: 80-99 → 1980s-1990s (GPS began in 1980), else 20xx
        return date((1900 if yy >= 80 else 2000) + yy, int(field[2:4]), int(field[0:2]))
    except ValueError as exc:
        raise NmeaError(f"bad date {field!r}") from exc


def _coordinate(value: str, hemisphere: str, degree_digits: int, what: str) -> float | None:
    if not value and not hemisphere:
        return None
    positive, negative = ("N", "S") if what == "latitude" else ("E", "W")
    if hemisphere not in (positive, negative):
        raise NmeaError(f"bad {what} hemisphere {hemisphere!r}")
    try:
        degrees = int(value[:degree_digits])
        minutes = float(value[degree_digits:])
    except ValueError as exc:
        raise NmeaError(f"bad {what} {value!r}") from exc
    limit = 90 if what == "latitude" else 180
    if minutes >= 60 or degrees + minutes / 60 > limit:
        raise NmeaError(f"{what} {value} {hemisphere} is out of range")
    result = degrees + minutes / 60
    return -result if hemisphere == negative else result


def _number(field: str, what: str, kind: Callable[[str], Any] = float) -> Any:
    if not field:
        return None
    try:
        return kind(field)
    except ValueError as exc:
        raise NmeaError(f"bad {what} {field!r}") from exc


def parse_sentence(line: str | bytes) -> Sentence:
    """One NMEA line (with or without CR LF) → ``Rmc`` or ``Gga``; anything else raises ``NmeaError``."""
    fields = _split(line)
    talker, kind = fields[0][:2], fields[0][2:]
    if kind == "RMC":
        if len(fields) < 12:
            raise NmeaError(f"RMC has {len(fields) - 1} fields, needs at least 11")
        if fields[2] not in ("A", "V"):
            raise NmeaError(f"bad RMC status {fields[2]!r}")
        clock, day = _time(fields[1]), _date(fields[9])
        utc = datetime.combine(day, clock) if clock is not None and day is not None else None
        return Rmc(
            talker,
            utc,
            fields[2] == "A",
            _coordinate(fields[3], fields[4], 2, "latitude"),
            _coordinate(fields[5], fields[6], 3, "longitude"),
            _number(fields[7], "speed"),
            _number(fields[8], "course"),
        )
    if kind == "GGA":
        if len(fields) < 15:
            raise NmeaError(f"GGA has {len(fields) - 1} fields, needs 14")
        quality = _number(fields[6], "fix quality", int)
        if quality is None or not 0 <= quality <= 8:
            raise NmeaError(f"bad GGA fix quality {fields[6]!r}")
        return Gga(
            talker,
            _time(fields[1]),
            _coordinate(fields[2], fields[3], 2, "latitude"),
            _coordinate(fields[4], fields[5], 3, "longitude"),
            quality,
            _number(fields[7], "satellite count", int),
            _number(fields[8], "HDOP"),
            _number(fields[9], "altitude"),
        )
    raise NmeaError(f"unsupported sentence type {kind!r}")


def _format_coordinate(value: float, degree_digits: int, positive: str, negative: str) -> tuple[str, str]:
    magnitude = abs(value)
    degrees = int(magnitude)
    minutes = round((magnitude - degrees) * 60, 4)
    if minutes >= 60:
        degrees, minutes = degrees + 1, 0.0
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}", positive if value >= 0 else negative


def format_rmc(
    utc: datetime, latitude: float, longitude: float, speed_knots: float = 0.0, course_deg: float = 0.0
) -> str:
    utc = utc.astimezone(UTC)
    lat, ns = _format_coordinate(latitude, 2, "N", "S")
    lon, ew = _format_coordinate(longitude, 3, "E", "W")
    stamp = f"{utc:%H%M%S}.{utc.microsecond // 10000:02d}"
    body = f"GPRMC,{stamp},A,{lat},{ns},{lon},{ew},{speed_knots:.1f},{course_deg:.1f},{utc:%d%m%y},,,A"
    return _with_checksum(body)


def format_gga(
    utc: datetime, latitude: float, longitude: float, satellites: int = 8, altitude_m: float = 0.0
) -> str:
    utc = utc.astimezone(UTC)
    lat, ns = _format_coordinate(latitude, 2, "N", "S")
    lon, ew = _format_coordinate(longitude, 3, "E", "W")
    stamp = f"{utc:%H%M%S}.{utc.microsecond // 10000:02d}"
    body = f"GPGGA,{stamp},{lat},{ns},{lon},{ew},1,{satellites:02d},0.9,{altitude_m:.1f},M,0.0,M,,"
    return _with_checksum(body)


class GpsReceiver:
    """Reads NMEA from ``url`` on a thread and keeps the latest fix (``fix()``); bad lines are counted and logged."""

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        max_age: float = 5.0,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        import time as _time_module

        self.url = url
        self.baudrate = baudrate
        self.max_age = max_age
        self._monotonic = monotonic or _time_module.monotonic
        self._lock = threading.Lock()
        self._fix: GpsFix | None = None
        self._fix_at = 0.0
        self.accepted = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def feed(self, line: str | bytes) -> Sentence | None:
        """Take one line; returns the parsed sentence, or None when it was rejected (counted, reason kept)."""
        try:
            sentence = parse_sentence(line)
        except NmeaError as exc:
            with self._lock:
                self.rejected += 1
                self.last_error = str(exc)
            if self.rejected <= 10 or self.rejected % 1000 == 0:
                log_event(log, "gps.sentence_rejected", reason=str(exc), total=self.rejected)
            return None
        with self._lock:
            self.accepted += 1
            self._apply(sentence)
        return sentence

    def _apply(self, sentence: Sentence) -> None:
        if sentence.latitude is None or sentence.longitude is None:
            return
        if isinstance(sentence, Rmc):
            if not sentence.valid:
                return
            previous = self._fix
            self._fix = GpsFix(
                sentence.latitude,
                sentence.longitude,
                sentence.utc,
                previous.satellites if previous else None,
                previous.altitude_m if previous else None,
                sentence.speed_knots,
                previous.quality if previous else None,
            )
        else:
            if sentence.quality == 0:
                return
            previous = self._fix
            utc = previous.utc if previous else None
            if utc is not None and sentence.utc_time is not None:
                utc = datetime.combine(utc.date(), sentence.utc_time)
            base = previous or GpsFix(sentence.latitude, sentence.longitude, utc)
            self._fix = replace(
                base,
                latitude=sentence.latitude,
                longitude=sentence.longitude,
                utc=utc,
                satellites=sentence.satellites,
                altitude_m=sentence.altitude_m,
                quality=sentence.quality,
            )
        self._fix_at = self._monotonic()

    def fix(self) -> GpsFix | None:
        """The latest fix, or None if there is none or it is older than ``max_age`` seconds."""
        with self._lock:
            if self._fix is None or self._monotonic() - self._fix_at > self.max_age:
                return None
            return self._fix

    def latest(self) -> tuple[GpsFix, float] | None:
        """The last fix ever received and its age in seconds, or None if there has been none."""
        with self._lock:
            if self._fix is None:
                return None
            return self._fix, max(0.0, self._monotonic() - self._fix_at)

    def start(self) -> GpsReceiver:
        self._thread = threading.Thread(target=self._loop, name="gps", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.5)
            except (serial.SerialException, OSError, ValueError) as exc:
                log_event(log, "gps.open_failed", url=self.url, error=str(exc))
                self._stop.wait(2.0)
                continue
            try:
                while not self._stop.is_set():
                    line = port.readline(MAX_SENTENCE + 16)
                    if line.strip():
                        self.feed(line)
            except (serial.SerialException, OSError, termios.error) as exc:  # termios.error is no OSError
                log_event(log, "gps.read_failed", url=self.url, error=str(exc))
                self._stop.wait(1.0)
            finally:
                port.close()
