"""Fine rules per jurisdiction: tariffs from data files, the reduced fine and its payment window, holidays.

Typical use::

    jur = load_jurisdiction("kz")
    cal = load_holiday_calendar("kz")
    rf = reduced_fine(jur, "592.1", offence_date, decision_date, cal)   # rf.due, rf.deadline, rf.legal_basis

What happens to a fine after the stop is data too (``<code>_lifecycle.toml``, ``load_lifecycle``) and runs in
the pure engine of ``core.fines.lifecycle_engine`` over the states of ``core.fines.fine_state``.
"""

from core.fines.datasets import (
    available_jurisdictions,
    load_holiday_calendar,
    load_jurisdiction,
    load_lifecycle,
    parse_holiday_rules,
    parse_jurisdiction,
    parse_lifecycle,
)
from core.fines.discount_window import discount_deadline, is_within_discount
from core.fines.errors import (
    CalendarNotCovered,
    DatasetError,
    FineError,
    MissingRate,
    NoMonetarySanction,
    NotPayableOnSpot,
    UnknownArticle,
    UnknownJurisdiction,
)
from core.fines.fine_state import FineState, TransitionRefused
from core.fines.holiday_calendar import HolidayCalendar, HolidayRules, build_calendar
from core.fines.jurisdiction import Article, DayCount, DiscountRule, Jurisdiction, Sanction, YearRule
from core.fines.lifecycle_rules import LifecycleRules
from core.fines.tariff import (
    DiscountContext,
    DiscountEligibility,
    ReducedFine,
    always_eligible,
    at_most_violations_per_year,
    fine_for,
    no_discount_with_pending_appeal,
    reduce_amount,
    reduced_fine,
)

__all__ = [
    "Article",
    "CalendarNotCovered",
    "DatasetError",
    "DayCount",
    "DiscountContext",
    "DiscountEligibility",
    "DiscountRule",
    "FineError",
    "FineState",
    "HolidayCalendar",
    "HolidayRules",
    "Jurisdiction",
    "LifecycleRules",
    "MissingRate",
    "NoMonetarySanction",
    "NotPayableOnSpot",
    "ReducedFine",
    "Sanction",
    "TransitionRefused",
    "UnknownArticle",
    "UnknownJurisdiction",
    "YearRule",
    "always_eligible",
    "at_most_violations_per_year",
    "available_jurisdictions",
    "build_calendar",
    "discount_deadline",
    "fine_for",
    "is_within_discount",
    "load_holiday_calendar",
    "load_jurisdiction",
    "load_lifecycle",
    "no_discount_with_pending_appeal",
    "parse_holiday_rules",
    "parse_jurisdiction",
    "parse_lifecycle",
    "reduce_amount",
    "reduced_fine",
]
