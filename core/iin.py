"""Kazakh individual identification numbers (ИИН / ЖСН): validation, decoding and masking for receipts.

Layout (fines.md §6): ``YYMMDD`` birth date, digit 7 = century and sex (1/2 = 1800s, 3/4 = 1900s, 5/6 = 2000s;
odd = male, even = female; 0 and 7-9 are not natural persons), digits 8-11 serial, digit 12 check digit::

    c = Σ d[i]·w1[i] mod 11, w1 = 1..11;  if c == 10: c = Σ d[i]·w2[i] mod 11, w2 = 3..11,1,2;  c == 10 → never issued

A BIN (legal entity) has the same length and checksum but its 5th digit (the entity type, 4-6) can never start a
day of month, so it is refused by name. The check misses some single-digit errors (weight 11 ≡ 0 mod 11), so a
valid checksum is not proof of identity: the officer still compares the ID card.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

W1 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
W2 = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
_CENTURY = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}
_BIN_TYPES = {
    "4": "resident legal entity",
    "5": "non-resident legal entity",
    "6": "individual entrepreneur (joint)",
}


class IinProblem(enum.StrEnum):
    """Why a string is not an acceptable IIN."""

    FORMAT = "format"  # not exactly 12 digits
    BIN = "bin"  # a business identification number, not a person
    CENTURY_DIGIT = "century_digit"  # digit 7 not 1-6
    BIRTH_DATE = "birth_date"  # YYMMDD is not a real date
    CHECK_DIGIT = "check_digit"  # checksum does not match, or the number can never be issued
    AGE = "age"  # birth date implausible for a driver on the reference date


class InvalidIin(ValueError):
    """The IIN was refused; ``problem`` says which rule failed and the message says how."""

    def __init__(self, problem: IinProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class Sex(enum.StrEnum):
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True)
class DriverAgeBounds:
    """Plausible driver ages in whole years (KZ: 16 for A1/B1 categories; upper bound a sanity limit)."""

    min_age: int = 16
    max_age: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.min_age <= self.max_age:
            raise ValueError(f"need 0 <= min_age <= max_age, got {self.min_age}..{self.max_age}")


@dataclass(frozen=True, slots=True)
class Iin:
    """A decoded, valid IIN."""

    value: str
    birth_date: date
    sex: Sex
    serial: str

    def age_on(self, on: date) -> int:
        """Age in completed years on ``on`` (someone born 29 Feb turns a year older on 1 Mar in common years)."""
        had_birthday = (on.month, on.day) >= (self.birth_date.month, self.birth_date.day)
        return on.year - self.birth_date.year - (0 if had_birthday else 1)

    def masked(self, keep_head: int = 4, keep_tail: int = 2, mask: str = "*") -> str:
        return mask_iin(self.value, keep_head, keep_tail, mask)

    def __str__(self) -> str:
        return self.value


def check_digit(first11: str) -> int | None:
    """The check digit for 11 leading digits, or None when the number can never be issued (second pass gives 10)."""
    if len(first11) != 11 or not first11.isascii() or not first11.isdigit():
        raise ValueError("check_digit needs exactly 11 ASCII digits")
    d = [int(ch) for ch in first11]
    c = sum(x * w for x, w in zip(d, W1, strict=True)) % 11
    if c == 10:
        c = sum(x * w for x, w in zip(d, W2, strict=True)) % 11
        if c == 10:
            return None
    return c


def has_valid_checksum(number: str) -> bool:
    """True when a 12-digit IIN or BIN passes the two-pass check-digit rule."""
    if len(number) != 12 or not number.isascii() or not number.isdigit():
        return False
    c = check_digit(number[:11])
    return c is not None and c == int(number[11])


def parse_iin(
    text: str,
    reference_date: date | None = None,
    age_bounds: DriverAgeBounds = DriverAgeBounds(),
) -> Iin:
    """Validate and decode an IIN of a natural person; raises ``InvalidIin`` naming the failed rule.

    Spaces and hyphens between digits are ignored (barcode readers and typed input). When ``reference_date`` is
    given the holder must also be a plausible driver on that date (``age_bounds``).
    """
    if not isinstance(text, str):
        raise InvalidIin(IinProblem.FORMAT, f"IIN must be a string, got {type(text).__name__}")
    s = "".join(ch for ch in text if ch not in " -\t")
    if len(s) != 12 or not s.isascii() or not s.isdigit():
        shown = s if len(s) <= 40 else s[:40] + "…"
        raise InvalidIin(
            IinProblem.FORMAT, f"IIN must be exactly 12 digits, got {len(s)} characters: {shown!r}"
        )
    if s[4] in _BIN_TYPES:
        what = "is a BIN" if has_valid_checksum(s) else "has the shape of a BIN"
        raise InvalidIin(
            IinProblem.BIN,
            f"{s} {what} ({_BIN_TYPES[s[4]]}: 5th digit {s[4]}), not the IIN of a person",
        )
    century_digit = int(s[6])
    century = _CENTURY.get(century_digit)
    if century is None:
        raise InvalidIin(
            IinProblem.CENTURY_DIGIT,
            f"7th digit {century_digit} is not a century/sex code of a person (must be 1-6)",
        )
    yy, mm, dd = int(s[0:2]), int(s[2:4]), int(s[4:6])
    try:
        born = date(century + yy, mm, dd)
    except ValueError:
        raise InvalidIin(
            IinProblem.BIRTH_DATE, f"birth date {s[4:6]}.{s[2:4]}.{century + yy} (digits 1-6) does not exist"
        ) from None
    expected = check_digit(s[:11])
    if expected is None:
        raise InvalidIin(IinProblem.CHECK_DIGIT, f"{s} can never be issued (check digit would be 10)")
    if expected != int(s[11]):
        raise InvalidIin(IinProblem.CHECK_DIGIT, f"check digit is {s[11]}, expected {expected}: mistyped IIN")
    iin = Iin(value=s, birth_date=born, sex=Sex.MALE if century_digit % 2 else Sex.FEMALE, serial=s[7:11])
    if reference_date is not None:
        age = iin.age_on(reference_date)
        if not age_bounds.min_age <= age <= age_bounds.max_age:
            raise InvalidIin(
                IinProblem.AGE,
                f"holder born {born} is {age} on {reference_date}: not a plausible driver "
                f"({age_bounds.min_age}-{age_bounds.max_age} years)",
            )
    return iin


def is_valid_iin(
    text: str, reference_date: date | None = None, age_bounds: DriverAgeBounds = DriverAgeBounds()
) -> bool:
    try:
        parse_iin(text, reference_date, age_bounds)
    except InvalidIin:
        return False
    return True


def mask_iin(iin: str, keep_head: int = 4, keep_tail: int = 2, mask: str = "*") -> str:
    """Hide the middle digits for a receipt: ``mask_iin("850101300124") == "8501******24"``."""
    if keep_head < 0 or keep_tail < 0 or keep_head + keep_tail > len(iin):
        raise ValueError(f"cannot keep {keep_head}+{keep_tail} characters of a {len(iin)}-character IIN")
    if len(mask) != 1:
        raise ValueError("mask must be one character")
    hidden = len(iin) - keep_head - keep_tail
    return iin[:keep_head] + mask * hidden + iin[len(iin) - keep_tail :]
