"""What an officer types at the roadside: KZ plates, mobile phones for notices, the driver's name as on the ID.
Each parser gives the stored form or its own error naming what is wrong, for any text at all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.id_name import InvalidIdName, NameProblem, parse_id_name
from core.phones import InvalidPhone, parse_kz_mobile
from core.plates import InvalidPlate, PlateProblem, parse_kz_plate


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("123ABC01", "123ABC01"), ("123 abc 01", "123ABC01"), ("123-АВС-02", "123ABC02"), ("777AB20", "777AB20"),
     ("A123BCD", "A123BCD"), ("м 001 ам", "M001AM")],
)  # fmt: skip
def test_plates_in_every_layout_and_with_cyrillic_twins(typed: str, stored: str) -> None:
    assert parse_kz_plate(typed) == stored


@pytest.mark.parametrize(
    ("typed", "problem"),
    [("", PlateProblem.EMPTY), ("  ", PlateProblem.EMPTY), ("123ЖЖЖ01", PlateProblem.CHARACTERS),
     ("12ABC01", PlateProblem.FORMAT), ("123ABCD01", PlateProblem.FORMAT), ("123ABC00", PlateProblem.REGION),
     ("123ABC21", PlateProblem.REGION), ("123ABC0!", PlateProblem.CHARACTERS)],
)  # fmt: skip
def test_wrong_plates_are_named(typed: str, problem: PlateProblem) -> None:
    with pytest.raises(InvalidPlate) as err:
        parse_kz_plate(typed)
    assert err.value.problem is problem


@pytest.mark.parametrize("typed", ["7011234567", "87011234567", "77011234567", "+7 (701) 123-45-67", "701 123 45 67"])
def test_mobile_numbers_in_every_typed_form_become_e164(typed: str) -> None:
    assert parse_kz_mobile(typed) == "+77011234567"


@pytest.mark.parametrize("typed", ["", "123", "7172123456", "70112345678901", "701123456a", "+1 202 555 0100"])
def test_wrong_phones_are_refused(typed: str) -> None:
    with pytest.raises(InvalidPhone):
        parse_kz_mobile(typed)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("Жұмабаев  Нұрлан Өмірұлы", "Жұмабаев Нұрлан Өмірұлы"), ("ZHANBOLATOV ARMAN", "ZHANBOLATOV ARMAN"),
     ("Абу-Бакир Ёлкин", "Абу-Бакир Ёлкин"), ("O'Neil Sean", "O'Neil Sean"), ("Іңкәр", "Іңкәр")],
)  # fmt: skip
def test_names_in_one_script(typed: str, stored: str) -> None:
    assert parse_id_name(typed) == stored


@pytest.mark.parametrize(
    ("typed", "problem"),
    [("", NameProblem.EMPTY), ("Aрман", NameProblem.MIXED_SCRIPTS), ("Arman Жанболатов", NameProblem.MIXED_SCRIPTS),
     ("Ivan2", NameProblem.CHARACTERS), ("Ivan -", NameProblem.CHARACTERS), ("A" * 201, NameProblem.TOO_LONG),
     ("Иван<script>", NameProblem.CHARACTERS)],
)  # fmt: skip
def test_wrong_names_are_named(typed: str, problem: NameProblem) -> None:
    with pytest.raises(InvalidIdName) as err:
        parse_id_name(typed)
    assert err.value.problem is problem


@given(st.text(max_size=80))
def test_any_text_gives_a_stored_form_or_the_parsers_own_error(text: str) -> None:
    for parse, error in ((parse_kz_plate, InvalidPlate), (parse_kz_mobile, InvalidPhone), (parse_id_name, InvalidIdName)):
        try:
            value = parse(text)
        except error:
            continue
        assert isinstance(value, str) and value == value.strip() and parse(value) == value
