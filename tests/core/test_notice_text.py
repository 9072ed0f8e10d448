"""Notice texts from the rules' templates: every language in order, money with its symbol, dates as DD.MM.YYYY."""

from __future__ import annotations

from datetime import date

from core.fines.datasets import load_lifecycle
from core.fines.notice_text import NoticeValues, render
from core.money import Money


def test_the_kz_demand_carries_kazakh_then_russian_with_the_pay_by_date() -> None:
    text = render(
        load_lifecycle("kz"),
        "demand",
        NoticeValues(
            number="KZ-2026-000001",
            plate="123ABC01",
            amount=Money.of(21625, "KZT"),
            full_amount=Money.of(21625, "KZT"),
            reduced_amount=Money.of("10812.50", "KZT"),
            discount_until=date(2026, 3, 12),
            pay_by=date(2026, 4, 26),
        ),
    )
    kk, ru = text.split("\n")
    assert "KZ-2026-000001" in kk and "26.04.2026" in kk and "21\u00a0625.00 ₸" in kk and "күнтізбелік" in kk
    assert ru.startswith("Уважаемый водитель!") and "5 календарных дней, до 26.04.2026" in ru


def test_the_ge_sms_is_georgian_with_the_reduced_amount_and_its_last_day() -> None:
    text = render(
        load_lifecycle("ge"),
        "issued",
        NoticeValues(
            number="GE-CAM-9",
            plate="AA-001-BB",
            amount=Money.of(300, "GEL"),
            full_amount=Money.of(300, "GEL"),
            reduced_amount=Money.of(240, "GEL"),
            discount_until=date(2026, 3, 12),
        ),
    )
    assert "\n" not in text
    assert "GE-CAM-9" in text and "AA-001-BB" in text and "240.00 ₾" in text and "12.03.2026" in text
    assert any("\u10d0" <= ch <= "\u10ff" for ch in text)  # Georgian script
