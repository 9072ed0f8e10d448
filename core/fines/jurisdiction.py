"""A jurisdiction's fine rules as plain, validated data: currency, fine unit (MRP) per year, discount rule, articles.

Adding a jurisdiction means adding ``core/fines/data/<code>.toml``; no code changes. The pydantic models below
are the schema of that file. Unknown keys are rejected (a typo such as ``fine_mpr`` is reported, not ignored),
integers and strings are strict (``"5"`` is not a number), and cross-field rules are checked with messages that
name the key: ``article[4] (596.3).simplified``.
"""

from __future__ import annotations

import enum
import re
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from core.fines.errors import MissingRate, NoMonetarySanction, UnknownArticle
from core.money import Currency, Money, Rounding, currency

StrictPositiveInt = Annotated[StrictInt, Field(gt=0)]


class Sanction(enum.StrEnum):
    """What the article's sanction is."""

    FINE = "fine"  # a pure fine (in MRP or a fixed amount)
    WARNING_OR_FINE = "warning_or_fine"  # the officer chooses a warning or the fine
    NON_MONETARY = "non_monetary"  # licence suspension, arrest…: no amount exists


class YearRule(enum.StrEnum):
    """Which date's year selects the MRP (and which date the discount window counts from)."""

    DECISION_DATE = "decision_date"
    OFFENCE_DATE = "offence_date"


class DayCount(enum.StrEnum):
    WORKING = "working"  # weekends and public holidays are skipped
    CALENDAR = "calendar"


class Confidence(enum.StrEnum):
    GOOD = "good"
    MEDIUM = "medium"
    UNVERIFIED = "unverified"


class FineUnitRate(BaseModel):
    """The value of the fine unit (KZ: МРП / АЕК) for one calendar year, in minor units (tiyn)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    year: Annotated[StrictInt, Field(ge=1990, le=2200)]
    value_minor: StrictPositiveInt
    source: StrictStr


class DiscountRule(BaseModel):
    """The reduced fine: ``percent`` off when paid within ``window_days`` counted from the day after the start date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: Annotated[StrictInt, Field(gt=0, le=100)]
    window_days: StrictPositiveInt
    day_count: DayCount
    counted_from: YearRule
    legal_basis: StrictStr
    rounding: Rounding
    round_to_minor: StrictPositiveInt = 1
    verified: StrictBool
    note: StrictStr = ""


ARTICLE_CODE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,31}$")


class Article(BaseModel):
    """One catalogue entry: an article (and part) of the offences code with its sanction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: StrictStr  # canonical lookup key, e.g. "592.3-1" = article 592 part 3-1
    article: StrictStr
    part: StrictStr | None = None
    title_ru: StrictStr | None = None
    title_kk: StrictStr | None = None
    title_kk_source: StrictStr = ""  # where the Kazakh title comes from (required with title_kk)
    title_en: StrictStr
    sanction: Sanction
    fine_units: StrictPositiveInt | None = None  # multiples of the fine unit (MRP)
    fine_minor: StrictPositiveInt | None = None  # a fixed amount in minor units
    simplified: StrictBool  # may be settled on the spot in the simplified procedure (reduced fine)
    confidence: Confidence
    source: StrictStr
    note: StrictStr = ""

    @field_validator("code")
    @classmethod
    def _code_shape(cls, v: str) -> str:
        if not ARTICLE_CODE.match(v):
            raise ValueError("must be 1-32 characters of letters, digits, '.' and '-', e.g. '592.3-1'")
        return v

    @model_validator(mode="after")
    def _sanction_consistent(self) -> Article:
        amounts = (self.fine_units is not None) + (self.fine_minor is not None)
        if self.sanction is Sanction.NON_MONETARY:
            if amounts:
                raise ValueError("a non_monetary sanction must have neither fine_units nor fine_minor")
            if self.simplified:
                raise ValueError("simplified: a non_monetary sanction cannot be settled on the spot")
        elif amounts != 1:
            raise ValueError(f"sanction {self.sanction.value!r} needs exactly one of fine_units, fine_minor")
        if self.simplified and self.sanction is not Sanction.FINE:
            raise ValueError("simplified: only a pure fine may be settled on the spot")
        if self.title_kk is not None and not self.title_kk_source.strip():
            raise ValueError("title_kk_source: a Kazakh title names its source")
        return self


def normalise_article_code(text: str) -> str:
    """Accept ``592.3-1``, ``592 ч.3-1``, ``ст. 592 ч. 3-1``, ``592/3-1``; return the canonical ``592.3-1``."""
    s = text.strip().lower().replace("ст.", " ").replace("статья", " ")
    m = re.fullmatch(r"\s*(\d+)\s*(?:(?:ч\.?|часть|part|p\.|\.|/)\s*([\d]+(?:-\d+)?))?\s*", s)
    if m is None:
        return text.strip()
    return m.group(1) if m.group(2) is None else f"{m.group(1)}.{m.group(2)}"


class Jurisdiction(BaseModel):
    """A validated jurisdiction dataset (``dataset``@``version``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: StrictStr
    version: StrictPositiveInt
    code: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")]
    name: StrictStr
    currency_code: Annotated[StrictStr, Field(alias="currency")]
    fine_unit: Literal["mrp", "currency"]
    mrp_year_rule: YearRule = YearRule.DECISION_DATE
    mrp: list[FineUnitRate] = Field(default_factory=list)
    discount: DiscountRule
    articles: list[Article] = Field(alias="article")

    _index: dict[str, Article] = PrivateAttr(default_factory=dict)
    _rates: dict[int, int] = PrivateAttr(default_factory=dict)

    @field_validator("currency_code")
    @classmethod
    def _known_currency(cls, v: str) -> str:
        currency(v)  # raises ValueError naming the code
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Jurisdiction:
        seen: set[int] = set()
        for i, r in enumerate(self.mrp):
            if r.year in seen:
                raise ValueError(f"mrp[{i}].year: {r.year} is listed twice")
            seen.add(r.year)
        codes: set[str] = set()
        for i, a in enumerate(self.articles):
            where = f"article[{i}] ({a.code})"
            if a.code in codes:
                raise ValueError(f"{where}.code: listed twice")
            codes.add(a.code)
            if self.fine_unit == "mrp" and a.fine_minor is not None:
                raise ValueError(f"{where}.fine_minor: fine_unit is 'mrp', give fine_units")
            if self.fine_unit == "currency" and a.fine_units is not None:
                raise ValueError(f"{where}.fine_units: fine_unit is 'currency', give fine_minor")
        if self.fine_unit == "mrp" and not self.mrp:
            raise ValueError("mrp: fine_unit is 'mrp' but no [[mrp]] rates are given")
        if not self.articles:
            raise ValueError("article: the catalogue is empty")
        return self

    def model_post_init(self, _context: object) -> None:
        self._index = {a.code: a for a in self.articles}
        self._rates = {r.year: r.value_minor for r in self.mrp}

    @property
    def currency(self) -> Currency:
        return currency(self.currency_code)

    @property
    def label(self) -> str:
        """``dataset@version``, stored with every decision for audit."""
        return f"{self.dataset}@{self.version}"

    def article(self, code: str) -> Article:
        """Look an article up by code (``592.1`` or ``592 ч.1``); raises ``UnknownArticle``."""
        found = self._index.get(code) or self._index.get(normalise_article_code(code))
        if found is None:
            raise UnknownArticle(code, self.label)
        return found

    def mrp_for_year(self, year: int) -> Money:
        """The fine unit for ``year``; raises ``MissingRate`` when the dataset has none."""
        value = self._rates.get(year)
        if value is None:
            known = ", ".join(str(y) for y in sorted(self._rates)) or "none"
            raise MissingRate(f"dataset {self.label} has no MRP for {year} (known years: {known})")
        return Money(value, self.currency)

    def full_fine(self, article: Article, on: date) -> tuple[Money, Money | None]:
        """The full fine of ``article`` with the unit year taken from ``on``; returns (amount, unit value or None)."""
        if article.sanction is Sanction.NON_MONETARY:
            raise NoMonetarySanction(f"article {article.code} ({self.label}) has no fine: {article.title_en}")
        if article.fine_units is not None:
            unit = self.mrp_for_year(on.year)
            return unit.times(article.fine_units), unit
        assert article.fine_minor is not None  # guaranteed by Article validation
        return Money(article.fine_minor, self.currency), None
