"""Whole numbers read from the wire (URL paths, HTTP headers): ASCII digits only, and a bounded count of them.

``str.isdigit`` is true for "²" (which ``int`` then refuses) and for "١" (which ``int`` reads as 1), and ``int``
refuses strings of more than 4300 digits; so no number from outside goes through either of them unchecked.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def parse_digits(text: str, max_digits: int = 19) -> int | None:
    """The non-negative integer ``text`` spells in 1 to ``max_digits`` ASCII digits, else None."""
    if not 0 < len(text) <= max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
