"""The officer app's texts: every message in all three languages, every message a template or the code asks
for exists, and every screen's template renders in each language without a missing name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.officer_app import i18n
from edge.officer_app.i18n import LANGUAGES, CatalogueError, Translator, _flatten, catalogue

APP = Path(i18n.__file__).resolve().parent
# keys built at run time from a value: every value they can take
DYNAMIC = {
    "shift.state.": ("open", "paid", "declined", "in_doubt"),
    "receipts.copy": ("1", "2"),
    "receipts.state.": ("printed", "printing", "waiting", "none", "unconfirmed", "failed"),
    "receipts.todo.": ("paper_end", "cover_open", "printer_error", "offline", "unconfirmed"),
    "pay.question.yes_": ("probable", "no_name"),
    "pay.question.no_": ("probable", "no_name"),
}


def test_every_message_has_all_three_languages_and_formats_in_each() -> None:
    for key, texts in catalogue().items():
        assert set(texts) == set(LANGUAGES), key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in texts.items()}
        assert fields["kk"] == fields["ru"] == fields["en"], f"{key}: placeholders differ {fields}"


def test_a_message_missing_a_language_is_refused_at_load() -> None:
    with pytest.raises(CatalogueError, match=r"nav\.lock: missing \[.kk.\]"):
        _flatten({"nav": {"lock": {"ru": "a", "en": "b"}}})


def test_every_key_asked_for_exists() -> None:
    asked: set[str] = set()
    for path in [*APP.rglob("*.html"), *APP.rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        asked |= set(re.findall(r"""\b[td]\(\s*["']([a-z_]+(?:\.[a-z0-9_]+)+)["']""", text))
        asked |= set(re.findall(r"""["']((?:pay|status|error|result|receipts|reason)\.[a-z_.]+[a-z])["']""", text))
        for prefix in re.findall(r"""[td]\(\s*["']([a-z_.]+[._])["']\s*~""", text):
            asked |= {prefix + v for v in DYNAMIC[prefix]}
    stops = (APP.parent / "stops.py").read_text(encoding="utf-8")  # the field errors' codes
    asked |= {f"error.{code}" for code in re.findall(r'FieldError\(\s*"([a-z_]+)"', stops)}
    asked |= {f"error.iin_{p}" for p in ("format", "bin", "century_digit", "birth_date", "check_digit", "age")}
    asked |= {f"error.name_{p}" for p in ("empty", "too_long", "characters", "mixed_scripts")}
    asked |= {f"error.plate_{p}" for p in ("empty", "characters", "format", "region")}
    asked = {k for k in asked if not k.endswith((".html", ".svg", ".py", ".", "_")) and k not in DYNAMIC}
    missing = sorted(k for k in asked if k not in catalogue())
    assert missing == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_ages_money_and_dates_in_each_language(lang: str) -> None:
    from datetime import date, timedelta

    from core.money import Money, currency

    t = Translator(lang)
    assert t.day(date(2026, 3, 9)) == "09.03.2026"
    assert t.money(Money(1_081_250, currency("KZT"))).replace("\u00a0", " ") == "10 812.50 ₸"
    assert t.age(timedelta(seconds=2)) == t("age.now")
    assert "3" in t.age(timedelta(minutes=3, seconds=5)) and "2" in t.age(timedelta(hours=2, minutes=1))
