"""Phone numbers for notices (SMS), as an officer types them at the roadside: Kazakh mobile numbers.

The officer's keypad is numeric, so the number is typed as digits: ``7011234567`` (10 digits after +7),
``87011234567`` or ``77011234567`` (11 digits, trunk prefix 8 or country code 7). Spaces, hyphens, brackets and
a leading ``+`` are ignored. Stored as E.164: ``+77011234567``.

Only mobile numbers are taken (a landline cannot receive the SMS notices): after +7 the operator code is one of
``MOBILE_CODES`` (700-709, 747, 750-751, 760-764, 771, 775-778: the codes of Kazakhstan's mobile operators as
commonly listed; unverified, keep the list current). Landlines also start with 7 (Astana 7172, Almaty 727).
"""

from __future__ import annotations

import re

MOBILE_CODES = frozenset(
    [f"70{d}" for d in range(10)] + ["747", "750", "751"] + [f"76{d}" for d in range(5)] + ["771", "775", "776", "777", "778"]
)


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
    if digits[:3] not in MOBILE_CODES:
        raise InvalidPhone(f"phone +7{digits}: {digits[:3]} is not a mobile operator's code")
    return "+7" + digits
