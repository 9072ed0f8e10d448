"""Every text of the officer app in Kazakh, Russian and English (``messages.toml``), and how numbers, money,
dates and ages are written for each language.

A message is a ``str.format`` template; a key missing in any language is refused when the catalogue is loaded,
and asking for an unknown key raises ``KeyError`` (templates are rendered by tests in all three languages).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from core.money import Money

LANGUAGES = ("kk", "ru", "en")
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
CATALOGUE = Path(__file__).with_name("messages.toml")


class CatalogueError(ValueError):
    pass


def _flatten(table: dict[str, object], prefix: str = "") -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if not isinstance(value, dict):
            raise CatalogueError(f"{key}: expected a table of languages")
        if set(value) & set(LANGUAGES) or not value:
            missing = [lang for lang in LANGUAGES if not isinstance(value.get(lang), str)]
            extra = sorted(set(value) - set(LANGUAGES))
            if missing or extra:
                raise CatalogueError(f"{key}: missing {missing} / unknown {extra}")
            out[key] = {lang: str(value[lang]) for lang in LANGUAGES}
        else:
            out.update(_flatten(value, key + "."))
    return out


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """``{key: {kk, ru, en}}`` from ``messages.toml``."""
    with CATALOGUE.open("rb") as fh:
        return _flatten(tomllib.load(fh))


def language_or(lang: str | None, default: str) -> str:
    return lang if lang in LANGUAGES else default


@dataclass(frozen=True)
class Translator:
    """Texts, money, dates and ages in one language; ``zone`` is the device's time zone."""

    lang: str
    zone: str = "Asia/Almaty"

    def __call__(self, key: str, **params: object) -> str:
        return catalogue()[key][self.lang].format(**params)

    def has(self, key: str) -> bool:
        return key in catalogue()

    def money(self, m: Money) -> str:
        return m.format(symbol=True)

    def day(self, d: date) -> str:
        return f"{d.day:02d}.{d.month:02d}.{d.year}"

    def local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.zone))

    def time(self, at: datetime) -> str:
        return f"{self.local(at):%H:%M}"

    def moment(self, at: datetime) -> str:
        local = self.local(at)
        return f"{self.day(local.date())} {local:%H:%M}"

    def age(self, age: timedelta) -> str:
        """How long ago, roughly: ``12 s ago``, ``3 min ago``, ``2 h ago``."""
        s = max(0, int(age.total_seconds()))
        if s < 5:
            return self("age.now")
        if s < 120:
            return self("age.s", n=s)
        if s < 7200:
            return self("age.min", n=s // 60)
        if s < 172800:
            return self("age.h", n=s // 3600)
        return self("age.d", n=s // 86400)
