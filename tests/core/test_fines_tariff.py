"""Tariffs: full fines from MRP × units, the 50 % (KZ) / 20 % (GE) reduced fine, rounding and refusals."""

from __future__ import annotations

from datetime import date

import pytest

from core.fines import (
    DiscountContext,
    HolidayCalendar,
    MissingRate,
    NoMonetarySanction,
    NotPayableOnSpot,
    UnknownArticle,
    UnknownJurisdiction,
    YearRule,
    always_eligible,
    at_most_violations_per_year,
    available_jurisdictions,
    fine_for,
    load_holiday_calendar,
    load_jurisdiction,
    no_discount_with_pending_appeal,
    reduce_amount,
    reduced_fine,
)
from core.money import GEL, KZT, Money, Rounding

KZ = load_jurisdiction("kz")
GE = load_jurisdiction("ge")
KZ_CAL = load_holiday_calendar("kz")
WEEKENDS = HolidayCalendar.weekends_only()


def tenge(amount: str) -> Money:
    return Money.of(amount, KZT)


@pytest.mark.parametrize(
    ("year", "mrp"),
    [(2023, "3450"), (2024, "3692"), (2025, "3932"), (2026, "4325")],
)
def test_mrp_per_year_matches_the_budget_laws(year: int, mrp: str) -> None:
    assert KZ.mrp_for_year(year) == tenge(mrp)


@pytest.mark.parametrize(
    ("units", "amount"),
    [(5, "21625"), (10, "43250"), (15, "64875"), (20, "86500"), (30, "129750"), (40, "173000")],
)
def test_2026_amounts_from_the_reference_table(units: int, amount: str) -> None:
    article = next(a for a in KZ.articles if a.fine_units == units)
    assert fine_for(KZ, article, date(2026, 6, 1)) == tenge(amount)


def test_the_mrp_year_is_the_decision_year_by_default() -> None:
    # offence on 31 Dec 2025, protocol on 2 Jan 2026: 2026 MRP applies
    assert fine_for(KZ, "592.1", date(2026, 1, 2), offence_date=date(2025, 12, 31)) == tenge("21625")


def test_the_mrp_year_rule_can_be_switched_to_the_offence_date() -> None:
    amount = fine_for(
        KZ, "592.1", date(2026, 1, 2), offence_date=date(2025, 12, 31), year_rule=YearRule.OFFENCE_DATE
    )
    assert amount == tenge("19660")  # 5 × 3 932
    with pytest.raises(ValueError, match="offence_date"):
        fine_for(KZ, "592.1", date(2026, 1, 2), year_rule=YearRule.OFFENCE_DATE)


def test_year_without_mrp_is_refused_naming_the_known_years() -> None:
    with pytest.raises(MissingRate, match=r"2031.*2023, 2024, 2025, 2026"):
        fine_for(KZ, "592.1", date(2031, 1, 5))


def test_article_lookup_accepts_russian_notation() -> None:
    assert KZ.article("592 ч.3-1").fine_units == 40
    assert KZ.article("ст. 599 ч. 1").code == "599.1"
    assert KZ.article("592/2").code == "592.2"


def test_unknown_article_is_refused_by_name() -> None:
    with pytest.raises(UnknownArticle, match=r"'999\.9'"):
        KZ.article("999.9")
    with pytest.raises(UnknownArticle):
        fine_for(KZ, "596", date(2026, 1, 5))  # article without part is not a catalogue entry


def test_red_light_is_599_not_596() -> None:
    assert "red light" in KZ.article("599.1").title_en.lower()
    assert KZ.article("599.1").fine_units == 10


def test_five_mrp_2026_reduces_to_exactly_10_812_50_tenge() -> None:
    rf = reduced_fine(KZ, "592.1", date(2026, 3, 2), date(2026, 3, 2), KZ_CAL)
    assert rf.full == tenge("21625")
    assert rf.due == tenge("10812.50")
    assert rf.due.minor == 1_081_250
    assert rf.reduction + rf.due == rf.full
    assert rf.percent == 50
    assert rf.legal_basis == "КоАП РК ст. 810"
    assert (rf.dataset, rf.dataset_version, rf.dataset_label) == ("fines-kz", 1, "fines-kz@1")
    assert (rf.mrp, rf.mrp_year) == (tenge("4325"), 2026)
    assert rf.eligible and rf.ineligible_reason is None
    # Mon 2 Mar 2026: 9 Mar is the carried-over 8 March, so day 7 is Thu 12 Mar
    assert rf.deadline == date(2026, 3, 12)


@pytest.mark.parametrize("code", [a.code for a in KZ.articles if a.simplified])
def test_every_simplified_kz_article_halves_exactly_in_tiyn(code: str) -> None:
    for year in (2023, 2024, 2025, 2026):
        rf = reduced_fine(KZ, code, date(year, 2, 1), date(year, 2, 1), KZ_CAL)
        assert rf.due.minor * 2 == rf.full.minor
        assert rf.due.currency is KZT


def test_licence_suspension_article_is_not_payable_on_the_spot() -> None:
    with pytest.raises(NotPayableOnSpot, match=r"596\.3"):
        reduced_fine(KZ, "596.3", date(2026, 3, 2), date(2026, 3, 2), KZ_CAL)
    with pytest.raises(NoMonetarySanction):
        fine_for(KZ, "596.3", date(2026, 3, 2))


@pytest.mark.parametrize("code", ["594.1", "602.1"])
def test_warning_or_fine_articles_have_a_fine_but_no_on_the_spot_payment(code: str) -> None:
    assert fine_for(KZ, code, date(2026, 3, 2)) == tenge("12975")  # 3 MRP
    with pytest.raises(NotPayableOnSpot):
        reduced_fine(KZ, code, date(2026, 3, 2), date(2026, 3, 2), KZ_CAL)


def test_decision_before_offence_is_refused() -> None:
    with pytest.raises(ValueError, match="before offence_date"):
        reduced_fine(KZ, "592.1", date(2026, 3, 2), date(2026, 3, 1), KZ_CAL)


def test_eligibility_hook_defaults_to_eligible_and_can_refuse_repeat_offenders() -> None:
    ctx = DiscountContext("KZ", "592.1", date(2026, 3, 2), date(2026, 3, 2), violations_last_year=9)
    assert always_eligible(ctx) is None
    hook = at_most_violations_per_year(5)
    ok = reduced_fine(KZ, "592.1", date(2026, 3, 2), date(2026, 3, 2), KZ_CAL, hook, violations_last_year=5)
    assert ok.eligible and ok.due == tenge("10812.50")
    refused = reduced_fine(
        KZ, "592.1", date(2026, 3, 2), date(2026, 3, 2), KZ_CAL, hook, violations_last_year=6
    )
    assert not refused.eligible
    assert refused.due == refused.full == tenge("21625")
    assert refused.reduction == tenge("0")
    assert refused.percent == 0
    assert "6 violations" in (refused.ineligible_reason or "")


def test_pending_appeal_hook_refuses_the_reduction() -> None:
    rf = reduced_fine(
        KZ,
        "592.1",
        date(2026, 3, 2),
        date(2026, 3, 2),
        KZ_CAL,
        no_discount_with_pending_appeal,
        appeal_pending=True,
    )
    assert not rf.eligible and "appeal" in (rf.ineligible_reason or "")


def test_georgia_takes_20_percent_off_fixed_lari_fines_within_10_calendar_days() -> None:
    rf = reduced_fine(GE, "phone", date(2026, 3, 6), date(2026, 3, 6), WEEKENDS)
    assert rf.full == Money.of("30", GEL)
    assert rf.due == Money.of("24", GEL)
    assert rf.reduction == Money.of("6", GEL)
    assert rf.deadline == date(2026, 3, 16)  # calendar days: weekends count
    assert rf.mrp is None and rf.mrp_year is None
    assert not GE.discount.verified  # the GE rules are flagged unverified


def test_packaged_jurisdictions_are_listed_and_unknown_codes_refused() -> None:
    assert available_jurisdictions() == ["ge", "kz"]
    assert load_jurisdiction("KZ").label == "fines-kz@1"
    with pytest.raises(UnknownJurisdiction, match="known: ge, kz"):
        load_jurisdiction("fr")
    with pytest.raises(UnknownJurisdiction):
        load_jurisdiction("../kz")


@pytest.mark.parametrize(
    ("full_minor", "percent", "rule", "step", "due_minor"),
    [
        (2162500, 50, Rounding.DOWN, 1, 1081250),  # exact: no rounding needed
        (2162500, 50, Rounding.DOWN, 100, 1081200),  # whole tenge, driver never pays more
        (2162500, 50, Rounding.HALF_UP, 100, 1081300),
        (2162500, 50, Rounding.HALF_EVEN, 100, 1081200),  # 10 812.5 → even 10 812
        (2162500, 50, Rounding.UP, 100, 1081300),
        (3, 50, Rounding.DOWN, 1, 1),  # 1.5 tiyn
        (3, 50, Rounding.HALF_UP, 1, 2),
        (7, 20, Rounding.DOWN, 1, 5),  # 5.6 tiyn
        (7, 20, Rounding.HALF_UP, 1, 6),
        (0, 50, Rounding.HALF_UP, 1, 0),
        (12345, 100, Rounding.DOWN, 1, 0),
    ],
)
def test_reduced_amount_rounding_rules(
    full_minor: int, percent: int, rule: Rounding, step: int, due_minor: int
) -> None:
    assert reduce_amount(Money(full_minor, KZT), percent, rule, step).minor == due_minor


def test_reduce_amount_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="percent"):
        reduce_amount(Money(100, KZT), 101, Rounding.DOWN)
    with pytest.raises(ValueError, match="step_minor"):
        reduce_amount(Money(100, KZT), 50, Rounding.DOWN, 0)


def test_dataset_rounding_setting_is_applied() -> None:
    from core.fines import parse_jurisdiction
    from core.fines.datasets import _read_packaged

    text = (_read_packaged("kz") or "").replace("round_to_minor = 1", "round_to_minor = 100")
    jur = parse_jurisdiction(text, "kz-whole-tenge")
    rf = reduced_fine(jur, "592.1", date(2026, 3, 2), date(2026, 3, 2), KZ_CAL)
    assert rf.due == tenge("10812")  # rounding "down" to whole tenge
    assert rf.reduction == tenge("10813")
