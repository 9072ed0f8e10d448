"""The driver's name as an officer types it from the ID card: Cyrillic (Russian and Kazakh letters) or Latin.

A name is written in one script, as on the document: a word that mixes scripts (``Aрман`` with a Latin A) is
almost always a keyboard slip, and it would defeat the own-card name check, so it is refused. Words are
letters, joined by a hyphen or an apostrophe (``Абу-Бакир``, ``O'Neil``); at most 200 characters.
"""

from __future__ import annotations

import enum
import re
import unicodedata

MAX_LENGTH = 200
_CYRILLIC = set("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯӘҒҚҢӨҰҮҺІ")
_LATIN = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class NameProblem(enum.StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too_long"
    CHARACTERS = "characters"  # digits, symbols, or letters of neither script
    MIXED_SCRIPTS = "mixed_scripts"


class InvalidIdName(ValueError):
    def __init__(self, problem: NameProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def _script(ch: str) -> str | None:
    base = unicodedata.normalize("NFD", ch)[0].upper()
    if base in _CYRILLIC or ch.upper() in _CYRILLIC:
        return "cyrillic"
    if base in _LATIN:
        return "latin"
    return None


def parse_id_name(text: str) -> str:
    """The name with spaces collapsed; ``InvalidIdName`` saying what is wrong."""
    name = " ".join(text.split())
    if not name:
        raise InvalidIdName(NameProblem.EMPTY, "name is empty")
    if len(name) > MAX_LENGTH:
        raise InvalidIdName(NameProblem.TOO_LONG, f"name is {len(name)} characters, at most {MAX_LENGTH}")
    scripts: set[str] = set()
    for word in re.split(r"[ \-'’]", name):
        if not word:
            raise InvalidIdName(NameProblem.CHARACTERS, "a hyphen or apostrophe must join two letters")
        word_scripts = {_script(ch) for ch in word}
        if None in word_scripts:
            bad = next(ch for ch in word if _script(ch) is None)
            raise InvalidIdName(NameProblem.CHARACTERS, f"{bad!r} is not a letter of a name")
        if len(word_scripts) > 1:
            raise InvalidIdName(NameProblem.MIXED_SCRIPTS, f"{word!r} mixes Cyrillic and Latin letters")
        scripts |= {s for s in word_scripts if s}
    if len(scripts) > 1:
        raise InvalidIdName(NameProblem.MIXED_SCRIPTS, "the name mixes Cyrillic and Latin words")
    return name
