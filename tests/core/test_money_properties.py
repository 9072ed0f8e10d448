"""Property tests of ``core.money``: exact arithmetic, allocation that sums exactly, bounded rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import GEL, KZT, Money, Rounding, round_fraction

amounts = st.integers(min_value=-(10**15), max_value=10**15)
money = amounts.map(lambda m: Money(m, KZT))
ratios = st.fractions(min_value=0, max_value=1, max_denominator=10_000)


@given(money, money, money)
def test_addition_is_associative_and_commutative(a: Money, b: Money, c: Money) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a


@given(money, money)
def test_subtraction_undoes_addition(a: Money, b: Money) -> None:
    assert (a + b) - b == a
    assert a - a == Money(0, KZT)
    negated = -a
    assert -negated == a


@given(st.integers(min_value=0, max_value=10**12), st.lists(st.integers(0, 1000), min_size=1, max_size=20))
def test_allocate_sums_exactly_and_parts_are_within_one_of_the_exact_share(
    total: int, weights: list[int]
) -> None:
    if sum(weights) == 0:
        with pytest.raises(ValueError):
            Money(total, KZT).allocate(weights)
        return
    parts = Money(total, KZT).allocate(weights)
    assert sum(p.minor for p in parts) == total
    for p, w in zip(parts, weights, strict=True):
        exact = Fraction(total * w, sum(weights))
        assert exact - 1 < p.minor <= exact + 1
        assert p.minor >= 0


@given(st.integers(min_value=0, max_value=10**12), ratios, st.sampled_from(list(Rounding)))
def test_share_is_within_one_minor_unit_of_the_exact_value(
    total: int, ratio: Fraction, rule: Rounding
) -> None:
    exact = total * ratio
    got = Money(total, KZT).share(ratio, rule).minor
    assert abs(got - exact) < 1
    if rule is Rounding.DOWN:
        assert got <= exact
    if rule is Rounding.UP:
        assert got >= exact
    if rule in (Rounding.HALF_UP, Rounding.HALF_EVEN):
        assert abs(got - exact) <= Fraction(1, 2)


@given(st.fractions(max_denominator=1000), st.sampled_from(list(Rounding)))
def test_round_fraction_picks_a_neighbouring_integer(value: Fraction, rule: Rounding) -> None:
    got = round_fraction(value, rule)
    assert value - 1 < got < value + 1
    if value.denominator == 1:
        assert got == value


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_down_truncates_towards_zero_for_halves(n: int) -> None:
    value = Fraction(2 * n + 1, 2)  # always exactly half-way
    assert round_fraction(value, Rounding.DOWN) == int(value)  # int() truncates towards zero
    assert round_fraction(value, Rounding.HALF_EVEN) % 2 == 0


@given(amounts)
def test_major_unit_round_trip_through_decimal(minor: int) -> None:
    m = Money(minor, KZT)
    assert Money.of(m.to_decimal(), KZT) == m


@given(money)
def test_mixing_currencies_is_refused(a: Money) -> None:
    with pytest.raises(ValueError, match="currency mismatch"):
        a + Money(1, GEL)


def test_floats_and_bools_are_refused() -> None:
    with pytest.raises(TypeError):
        Money.of(1.5, KZT)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, KZT)
