"""Phone numbers for notices (SMS), as an officer types them at the roadside: Kazakh mobile numbers.

The officer's keypad is numeric, so the number is typed as digits: ``7011234567`` (10 digits after +7),
``87011234567`` or ``77011234567`` (11 digits, trunk prefix 8 or country code 7). Spaces, hyphens, brackets and
a leading ``+`` are ignored. Mobile numbers in Kazakhstan start with 7 after the country code (+7 7xx); a
number that does not is refused (a landline cannot receive the SMS notices). Stored as E.164: ``+77011234567``.
"""

from __future__ import annotations

import re


class InvalidPhone(ValueError):
    pass


def parse_kz_mobile(text: str) -> str:
    """The number as E.164 (``+77011234567``); ``InvalidPhone`` saying what is wrong."""
    digits = re.sub(r"[\s\-()+.]", "", text)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidPhone(f"phone {text!r}: digits only")
    if len(digits) == 11 and digits[0] in "78":
        digits = digits[1:]
    if len(digits) != 10:
        raise InvalidPhone(f"phone {text!r}: 10 digits after +7 expected, got {len(digits)}")
    if digits[0] != "7":
        raise InvalidPhone(f"phone +7{digits}: not a mobile number (+7 7xx …)")
    return "+7" + digits
