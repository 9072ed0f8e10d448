"""Fine amounts: the full fine of an article on a date, and the reduced fine payable on the spot.

Amounts are exact integers of minor units (tiyn). The reduced amount due is
``full × (100 − percent) / 100`` computed as an exact fraction and settled to a multiple of the dataset's
``round_to_minor`` step (1 = one tiyn, 100 = whole tenge) by the dataset's ``rounding`` rule; the reduction is
then ``full − due``, so the two always add up to the full fine.

Default rounding is ``down`` (towards zero) for the amount due: with KZ MRPs in whole tenge, 50 % is always an
exact number of tiyn (5 MRP 2026 = 21 625 ₸ → 10 812.50 ₸, no rounding at all), so rounding only matters for
datasets that round to whole major units or use odd percentages. There, ``down`` means the driver is never
charged more than the law's exact share; the state loses less than one step. Whether the treasury and the acquirer
accept tiyn is unverified (fines.md §4): a jurisdiction that needs whole tenge sets ``round_to_minor = 100``.

Discount eligibility is a hook (``DiscountEligibility``): a function of a ``DiscountContext`` returning ``None``
when eligible or a reason string when not (e.g. the proposed "more than 5 violations a year, no discount", or a
pending appeal). The default, ``always_eligible``, grants the discount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from core.fines.discount_window import discount_deadline
from core.fines.errors import NotPayableOnSpot
from core.fines.holiday_calendar import HolidayCalendar
from core.fines.jurisdiction import Article, Jurisdiction, Sanction, YearRule
from core.money import Money, Rounding, round_fraction


@dataclass(frozen=True, slots=True)
class DiscountContext:
    """What an eligibility hook may look at."""

    jurisdiction: str
    article: str
    offence_date: date
    decision_date: date
    violations_last_year: int = 0  # earlier offences of this driver in the 365 days before (as known)
    appeal_pending: bool = False


DiscountEligibility = Callable[[DiscountContext], str | None]


def always_eligible(_ctx: DiscountContext) -> str | None:
    """Default hook: every driver gets the reduction."""
    return None


def at_most_violations_per_year(limit: int) -> DiscountEligibility:
    """Hook refusing the reduction to drivers with more than ``limit`` violations in the last year (2022 proposal)."""

    def check(ctx: DiscountContext) -> str | None:
        if ctx.violations_last_year > limit:
            return f"{ctx.violations_last_year} violations in the last year (more than {limit}): no reduction"
        return None

    return check


def no_discount_with_pending_appeal(ctx: DiscountContext) -> str | None:
    """Hook refusing the reduction while an appeal is pending (inform.kz / lada.kz, 30 Nov 2025)."""
    return "an appeal is pending: no reduction" if ctx.appeal_pending else None


def _article(jur: Jurisdiction, article: Article | str) -> Article:
    return jur.article(article) if isinstance(article, str) else article


def _unit_date(jur: Jurisdiction, rule: YearRule, offence_date: date | None, decision_date: date) -> date:
    if rule is YearRule.DECISION_DATE:
        return decision_date
    if offence_date is None:
        raise ValueError(f"dataset {jur.label} takes the MRP year from the offence date; pass offence_date")
    return offence_date


def fine_for(
    jur: Jurisdiction,
    article: Article | str,
    decision_date: date,
    offence_date: date | None = None,
    year_rule: YearRule | None = None,
) -> Money:
    """The full fine of ``article``; the MRP year follows the dataset's ``mrp_year_rule`` unless ``year_rule`` is given.

    Raises ``UnknownArticle``, ``NoMonetarySanction`` (sanction is not a fine) or ``MissingRate`` (no MRP that year).
    """
    art = _article(jur, article)
    on = _unit_date(jur, year_rule or jur.mrp_year_rule, offence_date, decision_date)
    return jur.full_fine(art, on)[0]


def reduce_amount(full: Money, percent: int, rounding: Rounding, step_minor: int = 1) -> Money:
    """The amount due after ``percent`` off, settled to a multiple of ``step_minor`` by ``rounding``."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be 0..100, got {percent}")
    if step_minor < 1:
        raise ValueError(f"step_minor must be >= 1, got {step_minor}")
    exact = Fraction(full.minor * (100 - percent), 100 * step_minor)
    return Money(round_fraction(exact, rounding) * step_minor, full.currency)


@dataclass(frozen=True, slots=True)
class ReducedFine:
    """Everything the device prints and stores for an on-the-spot payment of a reduced fine."""

    article: str
    full: Money
    reduction: Money
    due: Money
    percent: int
    deadline: date
    legal_basis: str
    dataset: str
    dataset_version: int
    mrp: Money | None
    mrp_year: int | None
    rounding: Rounding
    eligible: bool
    ineligible_reason: str | None = None

    @property
    def dataset_label(self) -> str:
        return f"{self.dataset}@{self.dataset_version}"


def reduced_fine(
    jur: Jurisdiction,
    article: Article | str,
    offence_date: date,
    decision_date: date,
    holidays: HolidayCalendar,
    eligibility: DiscountEligibility = always_eligible,
    violations_last_year: int = 0,
    appeal_pending: bool = False,
) -> ReducedFine:
    """The reduced fine for paying ``article`` on the spot.

    Raises ``NotPayableOnSpot`` when the article does not allow the simplified procedure (non-monetary or
    warning-or-fine sanctions), and ``ValueError`` when the decision predates the offence. When the eligibility
    hook refuses, the result carries the full amount as ``due``, ``eligible=False`` and the hook's reason.
    """
    art = _article(jur, article)
    if decision_date < offence_date:
        raise ValueError(f"decision_date {decision_date} is before offence_date {offence_date}")
    if not art.simplified or art.sanction is not Sanction.FINE:
        raise NotPayableOnSpot(
            f"article {art.code} ({jur.label}) cannot be settled on the spot: sanction {art.sanction.value}"
        )
    unit_on = _unit_date(jur, jur.mrp_year_rule, offence_date, decision_date)
    full, unit = jur.full_fine(art, unit_on)
    rule = jur.discount
    start = decision_date if rule.counted_from is YearRule.DECISION_DATE else offence_date
    deadline = discount_deadline(jur, start, holidays)
    ctx = DiscountContext(
        jur.code, art.code, offence_date, decision_date, violations_last_year, appeal_pending
    )
    refusal = eligibility(ctx)
    due = full if refusal else reduce_amount(full, rule.percent, rule.rounding, rule.round_to_minor)
    return ReducedFine(
        article=art.code,
        full=full,
        reduction=full - due,
        due=due,
        percent=0 if refusal else rule.percent,
        deadline=deadline,
        legal_basis=rule.legal_basis,
        dataset=jur.dataset,
        dataset_version=jur.version,
        mrp=unit,
        mrp_year=unit_on.year if unit is not None else None,
        rounding=rule.rounding,
        eligible=refusal is None,
        ineligible_reason=refusal,
    )
