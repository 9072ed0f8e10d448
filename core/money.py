"""Money as an integer count of minor units with its ISO 4217 currency; no floats anywhere money flows."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, numeric code and number of minor-unit digits."""

    code: str
    numeric: int
    minor_digits: int
    symbol: str

    @property
    def minor_per_major(self) -> int:
        return 10**self.minor_digits


KZT = Currency("KZT", 398, 2, "₸")
GEL = Currency("GEL", 981, 2, "₾")
EUR = Currency("EUR", 978, 2, "€")

CURRENCIES: dict[str, Currency] = {c.code: c for c in (KZT, GEL, EUR)}
CURRENCIES_BY_NUMERIC: dict[int, Currency] = {c.numeric: c for c in CURRENCIES.values()}


def currency(code: str | int) -> Currency:
    """Look a currency up by alphabetic or numeric code; unknown codes raise ValueError naming the code."""
    found = CURRENCIES_BY_NUMERIC.get(code) if isinstance(code, int) else CURRENCIES.get(code.upper())
    if found is None:
        raise ValueError(f"unknown currency {code!r}; known: {', '.join(sorted(CURRENCIES))}")
    return found


class Rounding(enum.StrEnum):
    """How a fraction of a minor unit is settled. Documented in README § Money."""

    HALF_UP = "half_up"  # 0.5 tiyn -> 1 tiyn (away from zero for positive amounts)
    HALF_EVEN = "half_even"  # banker's rounding
    DOWN = "down"  # truncate towards zero: the payer never pays more than the exact share
    UP = "up"  # towards +infinity


def round_fraction(value: Fraction, rule: Rounding) -> int:
    """Round an exact rational number of minor units to an integer by ``rule``."""
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest == 0:
        return floor
    if rule is Rounding.DOWN:
        return floor if value >= 0 else floor + 1
    if rule is Rounding.UP:
        return floor + 1
    half = Fraction(1, 2)
    if rest > half:
        return floor + 1
    if rest < half:
        return floor
    if rule is Rounding.HALF_UP:
        return floor + 1 if value >= 0 else floor
    return floor if floor % 2 == 0 else floor + 1  # HALF_EVEN


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount in integer minor units (tiyn, tetri) of one currency."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError(
                f"Money.minor must be an int count of minor units, got {type(self.minor).__name__}"
            )
        if not isinstance(self.currency, Currency):
            raise TypeError("Money.currency must be a Currency")

    @classmethod
    def of(cls, major: int | str | Decimal, cur: Currency | str) -> Money:
        """Build from a major-unit amount given exactly (int, str or Decimal; never float)."""
        c = cur if isinstance(cur, Currency) else currency(cur)
        if isinstance(major, float):
            raise TypeError("floats are not accepted for money; pass an int, a str or a Decimal")
        d = Decimal(major)
        minor = d * c.minor_per_major
        if minor != minor.to_integral_value():
            raise ValueError(f"{major} {c.code} has more than {c.minor_digits} decimal places")
        return cls(int(minor), c)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency.code} vs {other.currency.code}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def times(self, n: int) -> Money:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("Money can only be multiplied by an int")
        return Money(self.minor * n, self.currency)

    def share(self, ratio: Fraction, rule: Rounding) -> Money:
        """``ratio`` of this amount (e.g. Fraction(1, 2)), rounded to a whole minor unit by ``rule``."""
        return Money(round_fraction(self.minor * Fraction(ratio), rule), self.currency)

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split into parts proportional to ``weights`` that add up exactly to this amount (largest remainder)."""
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise ValueError("weights must be non-negative and not all zero")
        total = sum(weights)
        raw = [Fraction(self.minor * w, total) for w in weights]
        parts = [r.numerator // r.denominator for r in raw]
        left = self.minor - sum(parts)
        order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - parts[i]), i))
        for i in order[:left]:
            parts[i] += 1
        return [Money(p, self.currency) for p in parts]

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-self.currency.minor_digits)

    def format(self, symbol: bool = True) -> str:
        """Human form with thin grouping: ``10 812.50 ₸``."""
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), self.currency.minor_per_major)
        grouped = f"{whole:,}".replace(",", "\u00a0")
        body = f"{grouped}.{frac:0{self.currency.minor_digits}d}" if self.currency.minor_digits else grouped
        return f"{sign}{body} {self.currency.symbol if symbol else self.currency.code}"

    def __str__(self) -> str:
        return self.format(symbol=False)
