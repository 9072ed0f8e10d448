"""The texts of the notices a fine's lifecycle sends, made from the templates in its rules file.

A template is plain ``str.format`` text with the placeholders of ``TEMPLATE_FIELDS`` (checked when the file is
loaded); money is written with its symbol (``21 625.00 ₸``) and dates as ``DD.MM.YYYY``. One SMS carries the
text of every language of the rules, in their order, separated by a line break.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

from core.fines.lifecycle_rules import LifecycleRules
from core.money import Money


@dataclass(frozen=True, slots=True)
class NoticeValues:
    number: str
    plate: str
    amount: Money  # due on the day the notice is made
    full_amount: Money
    reduced_amount: Money
    discount_until: date
    pay_by: date | None = None
    surcharge: Money | None = None


@functools.lru_cache(maxsize=4096)
def _day(d: date | None) -> str:
    return d.strftime("%d.%m.%Y") if d is not None else ""


@functools.lru_cache(maxsize=4096)
def _money(m: Money) -> str:
    return m.format()


def render(rules: LifecycleRules, template: str, values: NoticeValues) -> str:
    """The full text of ``template`` in every language of ``rules``; ``KeyError`` for an unknown template."""
    texts = rules.templates[template]
    fields = {
        "number": values.number,
        "plate": values.plate,
        "amount": _money(values.amount),
        "full_amount": _money(values.full_amount),
        "reduced_amount": _money(values.reduced_amount),
        "discount_until": _day(values.discount_until),
        "pay_by": _day(values.pay_by),
        "surcharge": _money(values.surcharge or Money(0, values.amount.currency)),
    }
    return "\n".join(texts[lang].format(**fields) for lang in rules.languages)
