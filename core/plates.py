"""Kazakh vehicle registration plates as typed by an officer: normalised and checked against the formats in use.

Formats (unverified: from the plates on the road and the 2012 standard as commonly described; a lawyer or the
registration authority should confirm before release):

- ``123ABC01``: three digits, three letters, the region code (01-20) — private vehicles since 2012;
- ``123AB01``: three digits, two letters, the region code — vehicles of legal entities;
- ``A123BCD``: the older format, a region letter, three digits, two or three letters.

Only the Latin letters A-Z appear on the plates; a Cyrillic letter that looks the same (А В Е К М Н О Р С Т Х)
is taken for its Latin twin, since officers type on Russian and Kazakh keyboards. Spaces and hyphens are ignored.
"""

from __future__ import annotations

import enum
import re

_CYRILLIC_TWINS = str.maketrans("АВЕКМНОРСТХУ", "ABEKMHOPCTXY")
_CURRENT = re.compile(r"^(\d{3})([A-Z]{2,3})(\d{2})$")
_OLD = re.compile(r"^[A-Z]\d{3}[A-Z]{2,3}$")
REGIONS = range(1, 21)


class PlateProblem(enum.StrEnum):
    EMPTY = "empty"
    CHARACTERS = "characters"  # letters other than A-Z (and their Cyrillic twins), or symbols
    FORMAT = "format"  # no known layout
    REGION = "region"  # the current layout with a region code outside 01-20


class InvalidPlate(ValueError):
    def __init__(self, problem: PlateProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def normalise_plate(text: str) -> str:
    """Upper case, Cyrillic twins as Latin letters, without spaces and hyphens."""
    return re.sub(r"[\s\-]", "", text).upper().translate(_CYRILLIC_TWINS)


def parse_kz_plate(text: str) -> str:
    """The plate in its stored form (``123ABC01``); ``InvalidPlate`` naming what is wrong."""
    plate = normalise_plate(text)
    if not plate:
        raise InvalidPlate(PlateProblem.EMPTY, "plate is empty")
    if not re.fullmatch(r"[A-Z0-9]+", plate):
        raise InvalidPlate(PlateProblem.CHARACTERS, f"plate {plate!r}: only digits and the letters A-Z")
    current = _CURRENT.match(plate)
    if current is not None:
        if int(current.group(3)) not in REGIONS:
            raise InvalidPlate(
                PlateProblem.REGION, f"plate {plate}: region code {current.group(3)} is not 01-20"
            )
        return plate
    if _OLD.match(plate):
        return plate
    raise InvalidPlate(PlateProblem.FORMAT, f"plate {plate}: expected 123ABC01, 123AB01 or A123BCD")
