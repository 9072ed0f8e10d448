"""Working-day calendars: which dates count as working days when a legal period is counted in working days.

A ``HolidayCalendar`` is plain data: a set of days off (public holidays, carried-over days, decree transfers),
a set of weekend dates made working by decree, the weekday numbers that form the weekend, and optionally the
span of dates it is known to cover. Outside that span a computation raises ``CalendarNotCovered`` rather than
silently ignoring holidays nobody has loaded yet.

``HolidayRules`` is the dataset form (``core/fines/data/<code>_holidays.toml``): fixed-date holidays, moving ones
given per year (e.g. Kurban Ait), and decree transfers. ``build_calendar`` expands it, applying the carry-over
rule: a holiday marked ``carry_over`` that falls on a weekend makes the next working day after the holiday a day
off (KZ: Law "On holidays", art. 5; religious holidays are not carried over).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from core.fines.errors import CalendarNotCovered

_MAX_SCAN_DAYS = (
    3660  # a working-day search never needs to look ten years ahead; stops corrupt calendars looping
)


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Days off and working days; ``weekend`` holds ``date.weekday()`` numbers (Mon = 0 … Sun = 6)."""

    days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    weekend: frozenset[int] = frozenset({5, 6})
    first_day: date | None = None
    last_day: date | None = None
    name: str = "custom"
    version: int = 0
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.weekend <= frozenset(range(7)):
            raise ValueError(f"weekend must hold weekday numbers 0..6, got {sorted(self.weekend)}")
        if len(self.weekend) == 7:
            raise ValueError("weekend cannot be every day of the week")
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise ValueError(f"first_day {self.first_day} is after last_day {self.last_day}")
        both = self.days_off & self.working_days
        if both:
            raise ValueError(f"dates both off and working: {sorted(both)[:5]}")

    @classmethod
    def weekends_only(cls, weekend: Iterable[int] = (5, 6)) -> HolidayCalendar:
        """A calendar with no public holidays at all (every weekday works)."""
        return cls(weekend=frozenset(weekend), name="weekends-only")

    @classmethod
    def from_dates(
        cls,
        days_off: Iterable[date],
        working_days: Iterable[date] = (),
        weekend: Iterable[int] = (5, 6),
        first_day: date | None = None,
        last_day: date | None = None,
        name: str = "custom",
    ) -> HolidayCalendar:
        """Build from explicit dates (configuration): ``days_off`` are holidays, ``working_days`` are working weekends."""
        return cls(
            days_off=frozenset(days_off),
            working_days=frozenset(working_days),
            weekend=frozenset(weekend),
            first_day=first_day,
            last_day=last_day,
            name=name,
        )

    def with_days_off(self, extra: Iterable[date]) -> HolidayCalendar:
        """This calendar plus configured extra days off (e.g. ``[rules] holidays`` in the device config)."""
        added = frozenset(extra)
        return HolidayCalendar(
            days_off=self.days_off | added,
            working_days=self.working_days - added,
            weekend=self.weekend,
            first_day=self.first_day,
            last_day=self.last_day,
            name=self.name if not added else f"{self.name}+config",
            version=self.version,
            notes=self.notes,
        )

    def covers(self, day: date) -> bool:
        return (self.first_day is None or day >= self.first_day) and (
            self.last_day is None or day <= self.last_day
        )

    def _require_covered(self, day: date) -> None:
        if not self.covers(day):
            raise CalendarNotCovered(
                f"holiday calendar {self.name!r} v{self.version} covers {self.first_day}..{self.last_day}, "
                f"not {day}; load a newer holiday dataset"
            )

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is a working day; raises ``CalendarNotCovered`` outside the covered span."""
        self._require_covered(day)
        if day in self.working_days:
            return True
        if day in self.days_off:
            return False
        return day.weekday() not in self.weekend

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day strictly after ``start`` (``count`` = 0 returns ``start``)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative int, got {count!r}")
        day = start
        seen = 0
        scanned = 0
        while seen < count:
            day += timedelta(days=1)
            scanned += 1
            if scanned > _MAX_SCAN_DAYS + count:
                raise CalendarNotCovered(f"no working day found within {scanned} days after {start}")
            if self.is_working_day(day):
                seen += 1
        return day

    def working_days_between(self, after: date, until: date) -> int:
        """Number of working days ``d`` with ``after < d <= until`` (0 when ``until <= after``)."""
        n = 0
        day = after + timedelta(days=1)
        while day <= until:
            if self.is_working_day(day):
                n += 1
            day += timedelta(days=1)
        return n


Weekday = Annotated[StrictInt, Field(ge=1, le=7, description="ISO weekday: Mon = 1 … Sun = 7")]


class FixedHoliday(BaseModel):
    """A holiday on the same month and day every year (within ``from_year``..``to_year`` when given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    month: Annotated[StrictInt, Field(ge=1, le=12)]
    day: Annotated[StrictInt, Field(ge=1, le=31)]
    carry_over: StrictBool
    from_year: StrictInt | None = None
    to_year: StrictInt | None = None
    source: StrictStr = ""

    def on(self, year: int) -> date | None:
        if (self.from_year is not None and year < self.from_year) or (
            self.to_year is not None and year > self.to_year
        ):
            return None
        return date(year, self.month, self.day)

    @model_validator(mode="after")
    def _real_day(self) -> FixedHoliday:
        try:
            date(2024, self.month, self.day)  # leap year: 29 Feb is allowed here
        except ValueError:
            raise ValueError(f"month {self.month} has no day {self.day}") from None
        return self


class MovingHoliday(BaseModel):
    """A holiday whose date changes each year, listed per year (e.g. the first day of Kurban Ait)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    date: date
    carry_over: StrictBool
    verified: StrictBool
    source: StrictStr = ""


class DayTransfer(BaseModel):
    """A decree moving a day off: ``working_day`` (a weekend day) works and ``day_off`` (a weekday) rests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day_off: date
    working_day: date
    verified: StrictBool
    source: StrictStr = ""


class HolidayRules(BaseModel):
    """A holiday dataset as stored in TOML; expand it with ``build_calendar``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: StrictStr
    version: Annotated[StrictInt, Field(ge=1)]
    first_year: StrictInt
    last_year: StrictInt
    weekend: list[Weekday] = Field(default_factory=lambda: [6, 7])
    carry_over_rule: StrictStr = ""
    fixed: list[FixedHoliday] = Field(default_factory=list)
    moving: list[MovingHoliday] = Field(default_factory=list)
    transfer: list[DayTransfer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> HolidayRules:
        if self.last_year < self.first_year:
            raise ValueError(f"last_year {self.last_year} is before first_year {self.first_year}")
        if len(set(self.weekend)) == 7:
            raise ValueError("weekend: cannot be every day of the week")
        for i, m in enumerate(self.moving):
            if not self.first_year <= m.date.year <= self.last_year:
                raise ValueError(f"moving[{i}].date: {m.date} is outside {self.first_year}..{self.last_year}")
        for i, t in enumerate(self.transfer):
            for key in ("day_off", "working_day"):
                d: date = getattr(t, key)
                if not self.first_year <= d.year <= self.last_year:
                    raise ValueError(
                        f"transfer[{i}].{key}: {d} is outside {self.first_year}..{self.last_year}"
                    )
        return self


def build_calendar(rules: HolidayRules) -> HolidayCalendar:
    """Expand holiday rules into the concrete calendar for ``first_year``..``last_year``."""
    weekend = frozenset(d - 1 for d in rules.weekend)
    holidays: dict[date, bool] = {}  # date -> carry_over
    for year in range(rules.first_year, rules.last_year + 1):
        for f in rules.fixed:
            day = f.on(year)
            if day is not None:
                holidays[day] = holidays.get(day, False) or f.carry_over
    for m in rules.moving:
        holidays[m.date] = holidays.get(m.date, False) or m.carry_over
    carried: set[date] = set()
    for day in sorted(holidays):
        if not holidays[day] or day.weekday() not in weekend:
            continue
        nxt = day + timedelta(days=1)
        while nxt.weekday() in weekend or nxt in holidays or nxt in carried:
            nxt += timedelta(days=1)
        carried.add(nxt)
    days_off = set(holidays) | carried
    working: set[date] = set()
    for t in rules.transfer:
        days_off.add(t.day_off)
        working.add(t.working_day)
    days_off -= working
    notes = tuple(
        [f"moving holiday {m.name} {m.date} unverified" for m in rules.moving if not m.verified]
        + [f"transfer {t.working_day}->{t.day_off} unverified" for t in rules.transfer if not t.verified]
    )
    return HolidayCalendar(
        days_off=frozenset(days_off),
        working_days=frozenset(working),
        weekend=weekend,
        first_day=date(rules.first_year, 1, 1),
        last_day=date(rules.last_year, 12, 31),
        name=rules.dataset,
        version=rules.version,
        notes=notes,
    )
