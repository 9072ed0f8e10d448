"""The reduced-fine payment window: working days (KZ), holidays, carry-overs, decree transfers, calendar days (GE)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.fines import (
    CalendarNotCovered,
    HolidayCalendar,
    discount_deadline,
    is_within_discount,
    load_holiday_calendar,
    load_jurisdiction,
)

KZ = load_jurisdiction("kz")
GE = load_jurisdiction("ge")
KZ_CAL = load_holiday_calendar("kz")
WEEKENDS = HolidayCalendar.weekends_only()


def test_egov_example_issued_monday_1_august_2022_ends_wednesday_10_august() -> None:
    assert discount_deadline(KZ, date(2022, 8, 1), WEEKENDS) == date(2022, 8, 10)
    assert is_within_discount(KZ, date(2022, 8, 1), date(2022, 8, 10), WEEKENDS)
    assert not is_within_discount(KZ, date(2022, 8, 1), date(2022, 8, 11), WEEKENDS)
    assert is_within_discount(KZ, date(2022, 8, 1), date(2022, 8, 1), WEEKENDS)  # paid on the spot


@pytest.mark.parametrize(
    ("issued", "deadline"),
    [
        (date(2026, 2, 2), date(2026, 2, 11)),  # Mon → Wed, no holidays
        (date(2026, 2, 6), date(2026, 2, 17)),  # Fri → Tue (two weekends skipped)
        (date(2026, 2, 7), date(2026, 2, 17)),  # Sat: counting starts Mon 9 Feb
        (date(2026, 2, 8), date(2026, 2, 17)),  # Sun: same deadline as Sat
    ],
)
def test_weekends_are_not_counted(issued: date, deadline: date) -> None:
    assert discount_deadline(KZ, issued, KZ_CAL) == deadline


def test_nauryz_and_its_carried_over_days_are_skipped_in_2026() -> None:
    # 21-22 Mar 2026 fall on Sat/Sun, carried to Tue 24 and Wed 25; 23 Mar is Nauryz itself
    for d in (date(2026, 3, 23), date(2026, 3, 24), date(2026, 3, 25), date(2026, 3, 9)):
        assert not KZ_CAL.is_working_day(d), d
    # issued Fri 20 Mar: working days 26, 27, 30, 31 Mar, 1, 2, 3 Apr
    assert discount_deadline(KZ, date(2026, 3, 20), KZ_CAL) == date(2026, 4, 3)


def test_kz_2026_days_off_match_the_published_calendar() -> None:
    published = {  # inform.kz 2 Jan 2026 (egov.kz calendar), weekday days off only
        date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 7), date(2026, 3, 9), date(2026, 3, 23),
        date(2026, 3, 24), date(2026, 3, 25), date(2026, 5, 1), date(2026, 5, 7), date(2026, 5, 11),
        date(2026, 5, 27), date(2026, 7, 6), date(2026, 8, 31), date(2026, 10, 26), date(2026, 12, 16),
    }  # fmt: skip
    weekday_off = {
        d
        for d in (date(2026, 1, 1) + timedelta(days=i) for i in range(365))
        if d.weekday() < 5 and not KZ_CAL.is_working_day(d)
    }
    assert weekday_off == published


def test_kz_2025_carry_overs_and_the_january_decree_transfer() -> None:
    assert not KZ_CAL.is_working_day(date(2025, 1, 3))  # Fri, day off moved from Sun 5 Jan
    assert KZ_CAL.is_working_day(date(2025, 1, 5))  # Sunday that worked
    for d in (date(2025, 3, 10), date(2025, 3, 24), date(2025, 3, 25), date(2025, 7, 7), date(2025, 9, 1)):
        assert not KZ_CAL.is_working_day(d), d
    assert not KZ_CAL.is_working_day(date(2025, 10, 27))
    assert not KZ_CAL.is_working_day(date(2025, 6, 6))  # Kurban Ait


def test_religious_holidays_on_a_weekend_are_not_carried_over() -> None:
    # Kurban Ait 2024 fell on Sunday 16 June: Monday 17 June stayed a working day
    assert KZ_CAL.is_working_day(date(2024, 6, 17))
    # Orthodox Christmas 2023 fell on Saturday: Monday 9 Jan worked
    assert KZ_CAL.is_working_day(date(2023, 1, 9))
    # but New Year 1 Jan 2023 (Sunday) was carried past 2 Jan to Tuesday 3 Jan
    assert not KZ_CAL.is_working_day(date(2023, 1, 3))


def test_saturday_made_working_by_decree_counts_as_a_working_day() -> None:
    # 2023: Sat 1 Jul worked, Fri 7 Jul rested (Capital Day weekend)
    assert KZ_CAL.is_working_day(date(2023, 7, 1))
    # issued Thu 29 Jun 2023: Fri 30 Jun (1), Sat 1 Jul (2), Mon 3 (3) … Thu 6 is Capital Day, Fri 7 off,
    # Mon 10 (6), Tue 11 (7)
    assert discount_deadline(KZ, date(2023, 6, 29), KZ_CAL) == date(2023, 7, 11)


def test_dates_outside_the_holiday_dataset_are_refused_not_guessed() -> None:
    with pytest.raises(CalendarNotCovered, match="2028"):
        discount_deadline(KZ, date(2027, 12, 28), KZ_CAL)
    with pytest.raises(CalendarNotCovered):
        KZ_CAL.is_working_day(date(2022, 12, 31))


def test_custom_calendar_from_configured_dates() -> None:
    cal = HolidayCalendar.from_dates([date(2022, 8, 3)], name="config")
    # 3 Aug is now a holiday: deadline moves one working day later
    assert discount_deadline(KZ, date(2022, 8, 1), cal) == date(2022, 8, 11)


def test_configured_extra_holidays_extend_the_packaged_calendar() -> None:
    # a one-off day off declared after the dataset shipped (device config [rules] holidays)
    cal = KZ_CAL.with_days_off([date(2026, 2, 4)])
    assert not cal.is_working_day(date(2026, 2, 4))
    assert discount_deadline(KZ, date(2026, 2, 2), cal) == date(2026, 2, 12)
    assert discount_deadline(KZ, date(2026, 2, 2), KZ_CAL) == date(2026, 2, 11)
    assert KZ_CAL.with_days_off([]) == KZ_CAL


def test_calendar_refuses_contradictory_configuration() -> None:
    with pytest.raises(ValueError, match="both off and working"):
        HolidayCalendar.from_dates([date(2026, 1, 3)], working_days=[date(2026, 1, 3)])
    with pytest.raises(ValueError, match="weekend"):
        HolidayCalendar.weekends_only(range(7))
    with pytest.raises(ValueError, match="count"):
        WEEKENDS.add_working_days(date(2026, 1, 1), -1)


def test_georgia_counts_ten_calendar_days_including_weekends_and_holidays() -> None:
    assert discount_deadline(GE, date(2026, 12, 25), KZ_CAL) == date(2027, 1, 4)
    assert is_within_discount(GE, date(2026, 3, 1), date(2026, 3, 11), WEEKENDS)
    assert not is_within_discount(GE, date(2026, 3, 1), date(2026, 3, 12), WEEKENDS)


def test_pay_date_before_issue_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the notice"):
        is_within_discount(KZ, date(2026, 3, 2), date(2026, 3, 1), KZ_CAL)


# ---- properties --------------------------------------------------------------------------------------------

covered_days = st.dates(min_value=date(2023, 1, 1), max_value=date(2027, 11, 30))


@settings(max_examples=300, deadline=None)
@given(covered_days)
def test_deadline_is_a_working_day_exactly_seven_working_days_later(issued: date) -> None:
    deadline = discount_deadline(KZ, issued, KZ_CAL)
    assert KZ_CAL.is_working_day(deadline)
    assert KZ_CAL.working_days_between(issued, deadline) == 7
    assert deadline >= issued + timedelta(days=7)  # at least as long as seven calendar days
    assert deadline <= issued + timedelta(days=7 + 2 * 2 + 10)  # never absurdly far


@settings(max_examples=200, deadline=None)
@given(
    st.dates(min_value=date(2023, 1, 1), max_value=date(2027, 11, 1)), st.integers(min_value=0, max_value=30)
)
def test_deadline_is_monotonic_in_the_issue_date(issued: date, later_by: int) -> None:
    later = issued + timedelta(days=later_by)
    assert discount_deadline(KZ, issued, KZ_CAL) <= discount_deadline(KZ, later, KZ_CAL)


@settings(max_examples=200, deadline=None)
@given(covered_days, st.integers(min_value=0, max_value=25))
def test_within_window_iff_pay_date_not_after_deadline(issued: date, after: int) -> None:
    pay = issued + timedelta(days=after)
    deadline = discount_deadline(KZ, issued, KZ_CAL)
    assert is_within_discount(KZ, issued, pay, KZ_CAL) == (pay <= deadline)


@settings(max_examples=150, deadline=None)
@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)),
    st.frozensets(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 3, 1)), max_size=40),
)
def test_extra_holidays_never_shorten_the_window(issued: date, holidays: frozenset[date]) -> None:
    plain = discount_deadline(KZ, issued, WEEKENDS)
    with_holidays = discount_deadline(KZ, issued, HolidayCalendar.from_dates(holidays))
    assert with_holidays >= plain
    assert with_holidays.weekday() < 5 and with_holidays not in holidays
