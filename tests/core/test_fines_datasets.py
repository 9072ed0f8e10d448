"""Jurisdiction and holiday datasets: the packaged files load, and broken files fail naming the bad key."""

from __future__ import annotations

import re
from datetime import date

import pytest

from core.fines import (
    DatasetError,
    HolidayCalendar,
    build_calendar,
    discount_deadline,
    fine_for,
    load_holiday_calendar,
    parse_holiday_rules,
    parse_jurisdiction,
)
from core.fines.datasets import _read_packaged
from core.money import Money

KZ_TEXT = _read_packaged("kz") or ""
HOL_TEXT = _read_packaged("kz_holidays") or ""

MINIMAL = """
dataset = "fines-xx"
version = 3
code = "XX"
name = "Test land"
currency = "EUR"
fine_unit = "mrp"

[[mrp]]
year = 2026
value_minor = 1000
source = "test"

[discount]
percent = 30
window_days = 5
day_count = "working"
counted_from = "decision_date"
legal_basis = "Test Code s. 1"
rounding = "half_up"
round_to_minor = 100
verified = false

[[article]]
code = "1.1"
article = "1"
part = "1"
title_en = "Test offence"
sanction = "fine"
fine_units = 3
simplified = true
confidence = "unverified"
source = "test"
"""


def errors_of(text: str) -> str:
    with pytest.raises(DatasetError) as info:
        parse_jurisdiction(text, "bad.toml")
    return str(info.value)


def test_a_new_jurisdiction_is_only_a_data_file() -> None:
    jur = parse_jurisdiction(MINIMAL, "xx.toml")
    assert jur.label == "fines-xx@3"
    assert fine_for(jur, "1.1", date(2026, 5, 5)) == Money.of("30", "EUR")
    assert discount_deadline(jur, date(2026, 5, 1), HolidayCalendar.weekends_only()) == date(2026, 5, 8)


def test_packaged_kz_dataset_has_sources_for_every_rate_and_article() -> None:
    jur = parse_jurisdiction(KZ_TEXT, "kz.toml")
    assert all(r.source for r in jur.mrp)
    assert all(a.source for a in jur.articles)
    assert {a.code for a in jur.articles if not a.simplified} == {"594.1", "596.3", "602.1"}


def test_missing_key_is_named() -> None:
    msg = errors_of(MINIMAL.replace('legal_basis = "Test Code s. 1"\n', ""))
    assert "discount.legal_basis: Field required" in msg


def test_missing_top_level_key_is_named() -> None:
    msg = errors_of(MINIMAL.replace('currency = "EUR"\n', ""))
    assert "currency: Field required" in msg


def test_wrong_type_is_named_with_the_value() -> None:
    msg = errors_of(MINIMAL.replace("fine_units = 3", 'fine_units = "3"'))
    assert "article[0] (1.1).fine_units" in msg
    assert "'3'" in msg


def test_negative_mrp_is_refused() -> None:
    msg = errors_of(KZ_TEXT.replace("value_minor = 369200", "value_minor = -369200"))
    assert re.search(r"mrp\[1\]\.value_minor: Input should be greater than 0 \(got -369200\)", msg), msg


def test_misspelt_key_is_refused_not_ignored() -> None:
    msg = errors_of(MINIMAL.replace("fine_units = 3", "fine_units = 3\nfine_mpr = 3"))
    assert "article[0] (1.1).fine_mpr: Extra inputs are not permitted" in msg


def test_unknown_currency_and_enum_values_are_named() -> None:
    assert "currency: unknown currency 'XYZ'" in errors_of(MINIMAL.replace('"EUR"', '"XYZ"'))
    assert "discount.rounding" in errors_of(MINIMAL.replace('"half_up"', '"bankers"'))
    assert "discount.day_count" in errors_of(MINIMAL.replace('"working"', '"business"'))


def test_cross_field_rules_name_the_article() -> None:
    msg = errors_of(
        KZ_TEXT.replace(
            'sanction = "non_monetary"\nsimplified = false', 'sanction = "non_monetary"\nsimplified = true'
        )
    )
    assert "article[11] (596.3)" in msg and "simplified" in msg
    msg = errors_of(MINIMAL.replace('code = "1.1"', 'code = "1.1"\nfine_minor = 500'))
    assert "exactly one of fine_units, fine_minor" in msg


def test_duplicates_and_empty_tables_are_refused() -> None:
    dup_year = KZ_TEXT.replace("year = 2024", "year = 2023")
    assert "mrp[1].year: 2023 is listed twice" in errors_of(dup_year)
    dup_article = KZ_TEXT.replace('code = "591.2"', 'code = "591.1"')
    assert "article[1] (591.1).code: listed twice" in errors_of(dup_article)
    no_rates = re.sub(r"\[\[mrp\]\][^\[]*", "", MINIMAL)
    assert "no [[mrp]] rates" in errors_of(no_rates)


def test_broken_toml_and_bad_article_codes_are_refused() -> None:
    assert "not valid TOML" in errors_of(MINIMAL + "\n[[article]\n")
    assert "article[0] (1 1).code" in errors_of(MINIMAL.replace('code = "1.1"', 'code = "1 1"'))
    huge = "x" * 100_000
    assert "article[0]" in errors_of(MINIMAL.replace('code = "1.1"', f'code = "{huge}"'))


def test_holiday_dataset_errors_name_the_key() -> None:
    with pytest.raises(DatasetError, match=r"fixed\[0\]: month 2 has no day 30"):
        parse_holiday_rules(HOL_TEXT.replace("month = 1\nday = 1\n", "month = 2\nday = 30\n", 1))
    with pytest.raises(DatasetError, match=r"moving\[0\].date: 2019-06-28 is outside 2023..2027"):
        parse_holiday_rules(HOL_TEXT.replace("date = 2023-06-28", "date = 2019-06-28"))
    with pytest.raises(DatasetError, match=r"weekend\[0\]: Input should be greater than or equal to 1"):
        parse_holiday_rules(HOL_TEXT.replace("weekend = [6, 7]", "weekend = [0, 7]"))
    with pytest.raises(DatasetError, match=r"transfer\[0\]\.verified: Field required"):
        parse_holiday_rules(HOL_TEXT.replace('verified = true\nsource = "sn.kz', 'source = "sn.kz'))


def test_packaged_holiday_calendar_covers_2023_to_2027_and_flags_unverified_entries() -> None:
    cal = load_holiday_calendar("kz")
    assert (cal.first_day, cal.last_day) == (date(2023, 1, 1), date(2027, 12, 31))
    assert any("2027-05-16" in n for n in cal.notes)
    assert cal == build_calendar(parse_holiday_rules(HOL_TEXT))
