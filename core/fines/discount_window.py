"""The period in which the reduced fine may be paid: its last day, and whether a payment date falls inside it.

KZ (КоАП РК art. 810, egov.kz): 7 working days counted from the day after the notice is issued; weekends and
public holidays are not counted (egov example: issued Mon 1 Aug 2022 → last day Wed 10 Aug 2022).
GE (unverified): 10 calendar days. The rule comes from the jurisdiction's ``discount`` dataset entry; the holiday
calendar is passed in. Dates are local calendar dates of the jurisdiction: the caller converts timestamps.
"""

from __future__ import annotations

from datetime import date, timedelta

from core.fines.holiday_calendar import HolidayCalendar
from core.fines.jurisdiction import DayCount, Jurisdiction


def discount_deadline(jur: Jurisdiction, issued_on: date, holidays: HolidayCalendar) -> date:
    """Last day (inclusive) on which the reduced fine may be paid for a notice issued on ``issued_on``."""
    rule = jur.discount
    if rule.day_count is DayCount.WORKING:
        return holidays.add_working_days(issued_on, rule.window_days)
    return issued_on + timedelta(days=rule.window_days)


def is_within_discount(jur: Jurisdiction, issued_on: date, pay_date: date, holidays: HolidayCalendar) -> bool:
    """True when paying on ``pay_date`` still earns the reduction; a pay date before issue is an error."""
    if pay_date < issued_on:
        raise ValueError(f"pay_date {pay_date} is before the notice was issued ({issued_on})")
    return pay_date <= discount_deadline(jur, issued_on, holidays)
