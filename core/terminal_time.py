"""The terminal's clock as a ZVT result reports it: date BMP 0D (MMDD) and time BMP 0C (hhmmss), local time
of the terminal, no year. Stored as it came (``MMDDhhmmss``); read here as a local date and time, the year
being the one that puts it nearest to a known instant (a payment at 00:05 on 1 January, reported 1231235930,
belongs to the year before)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

_RAW = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)")


def terminal_local_time(raw: str, near: datetime, timezone: str) -> datetime | None:
    """``raw`` (``MMDDhhmmss``) as an aware local time in ``timezone``, nearest to ``near``; None if it is
    not a valid date and time."""
    m = _RAW.fullmatch(raw.strip())
    if m is None:
        return None
    month, day, hour, minute, second = (int(g) for g in m.groups())
    tz = ZoneInfo(timezone)
    anchor = near.astimezone(tz)
    best: datetime | None = None
    for year in (anchor.year - 1, anchor.year, anchor.year + 1):
        try:
            at = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:  # 29 February of a common year, month 13 …
            continue
        if best is None or abs(at - anchor) < abs(best - anchor):
            best = at
    return best


def terminal_time_text(raw: str, near: datetime, timezone: str) -> str:
    """``07.12.2026 00:53:20`` for the receipt; a value that is not ``MMDDhhmmss`` is shown as it came."""
    at = terminal_local_time(raw, near, timezone)
    return at.strftime("%d.%m.%Y %H:%M:%S") if at is not None else raw
