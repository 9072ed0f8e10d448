"""IIN validation: check digit (two passes), century/sex digit, real birth dates, driver age, BIN refusal, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.iin import (
    DriverAgeBounds,
    IinProblem,
    InvalidIin,
    Sex,
    has_valid_checksum,
    is_valid_iin,
    mask_iin,
    parse_iin,
)


def reference_check(digits: str) -> int | None:
    """fines.md §6 written out independently of core.iin, as the test oracle."""
    d = [int(c) for c in digits[:11]]
    c = sum(x * w for x, w in zip(d, range(1, 12), strict=True)) % 11
    if c == 10:
        c = sum(x * w for x, w in zip(d, [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], strict=True)) % 11
        return None if c == 10 else c
    return c


def test_reference_vector_needing_the_second_pass_is_valid() -> None:
    iin = parse_iin("061211600012")  # kz-iin-validator README
    assert iin.birth_date == date(2006, 12, 11)
    assert iin.sex is Sex.FEMALE
    assert iin.serial == "0001"


def test_first_pass_vector_is_valid_and_decoded() -> None:
    iin = parse_iin("850101300124")
    assert (iin.birth_date, iin.sex) == (date(1985, 1, 1), Sex.MALE)
    assert str(iin) == "850101300124"


def test_weight_eleven_blind_spot_is_documented_behaviour() -> None:
    assert parse_iin("850101300104").birth_date == date(1985, 1, 1)


@pytest.mark.parametrize(("wrong", "expected"), [("061211600013", 2), ("850101300125", 4)])
def test_wrong_check_digit_is_refused_saying_which_digit_was_expected(wrong: str, expected: int) -> None:
    with pytest.raises(InvalidIin) as info:
        parse_iin(wrong)
    assert info.value.problem is IinProblem.CHECK_DIGIT
    assert f"expected {expected}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem", "words"),
    [
        ("85010130012", IinProblem.FORMAT, "12 digits"),
        ("8501013001245", IinProblem.FORMAT, "12 digits"),
        ("85010130012a", IinProblem.FORMAT, "12 digits"),
        ("８５０１０１３００１２４", IinProblem.FORMAT, "12 digits"),  # full-width digits are not ASCII
        ("", IinProblem.FORMAT, "0 characters"),
        ("850101000124", IinProblem.CENTURY_DIGIT, "7th digit 0"),
        ("850101700124", IinProblem.CENTURY_DIGIT, "7th digit 7"),
        ("850101900124", IinProblem.CENTURY_DIGIT, "7th digit 9"),
        ("851301300124", IinProblem.BIRTH_DATE, "does not exist"),
        ("850132300124", IinProblem.BIRTH_DATE, "does not exist"),
        ("000229300015", IinProblem.BIRTH_DATE, "29.02.1900"),  # 1900 was not a leap year
        ("970840000108", IinProblem.BIN, "is a BIN"),  # checksum valid BIN of a resident legal entity
        ("970850000109", IinProblem.BIN, "shape of a BIN"),
    ],
)
def test_invalid_iins_name_the_problem(text: str, problem: IinProblem, words: str) -> None:
    with pytest.raises(InvalidIin) as info:
        parse_iin(text)
    assert info.value.problem is problem
    assert words in str(info.value)
    assert not is_valid_iin(text)


def test_bin_vector_really_has_a_valid_checksum() -> None:
    assert has_valid_checksum("970840000108")
    assert reference_check("970840000108") == 8


def test_29_february_2000_is_a_real_birth_date() -> None:
    iin = parse_iin("000229500018")
    assert iin.birth_date == date(2000, 2, 29)
    assert iin.age_on(date(2018, 2, 28)) == 17
    assert iin.age_on(date(2018, 3, 1)) == 18


def test_non_string_input_is_a_format_problem() -> None:
    with pytest.raises(InvalidIin) as info:
        parse_iin(850101300124)  # type: ignore[arg-type]
    assert info.value.problem is IinProblem.FORMAT


def test_spaces_and_hyphens_from_typed_input_are_ignored() -> None:
    assert parse_iin(" 850101 300124 ").value == "850101300124"
    assert parse_iin("850101-300124").value == "850101300124"


def test_number_that_can_never_be_issued_is_refused() -> None:
    # search the space with the independent oracle for a number whose second pass also gives 10
    never = next(f"8501013{n:04d}" for n in range(10_000) if reference_check(f"8501013{n:04d}") is None)
    with pytest.raises(InvalidIin) as info:
        parse_iin(never + "0")
    assert info.value.problem is IinProblem.CHECK_DIGIT and "never be issued" in str(info.value)


def test_driver_age_bounds_apply_on_the_reference_date() -> None:
    with pytest.raises(InvalidIin) as info:
        parse_iin("061211600012", reference_date=date(2022, 12, 10))  # 15 years old
    assert info.value.problem is IinProblem.AGE and "15" in str(info.value)
    assert parse_iin("061211600012", reference_date=date(2022, 12, 11)).age_on(date(2022, 12, 11)) == 16
    with pytest.raises(InvalidIin, match="not a plausible driver"):
        parse_iin("850101300124", reference_date=date(2026, 1, 1), age_bounds=DriverAgeBounds(18, 40))
    with pytest.raises(ValueError):
        DriverAgeBounds(30, 20)


def test_masking_for_receipts() -> None:
    assert mask_iin("850101300124") == "8501******24"
    assert mask_iin("850101300124", keep_head=0, keep_tail=4) == "********0124"
    assert mask_iin("850101300124", mask="X") == "8501XXXXXX24"
    assert parse_iin("850101300124").masked() == "8501******24"
    with pytest.raises(ValueError):
        mask_iin("850101300124", keep_head=10, keep_tail=5)
    with pytest.raises(ValueError):
        mask_iin("850101300124", mask="**")


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_checksum_agrees_with_the_independent_oracle(digits: str) -> None:
    expected = reference_check(digits)
    assert has_valid_checksum(digits) == (expected is not None and expected == int(digits[11]))


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.sampled_from([3, 4, 5, 6]),
    st.integers(min_value=0, max_value=9999),
)
def test_every_well_formed_iin_decodes_to_its_birth_date_and_sex(born: date, code: int, serial: int) -> None:
    if (born.year >= 2000) != (code >= 5):
        return
    head = f"{born:%y%m%d}{code}{serial:04d}"
    check = reference_check(head)
    if check is None:
        return
    iin = parse_iin(head + str(check))
    assert iin.birth_date == born
    assert iin.sex is (Sex.MALE if code % 2 else Sex.FEMALE)
    for wrong in range(10):
        if wrong != check:
            assert not is_valid_iin(head + str(wrong))


@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_iin(text)
    except InvalidIin as exc:
        assert exc.problem in IinProblem
