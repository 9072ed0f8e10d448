"""Reading SMPP delivery receipts, whatever the SMS centre puts where.

The message id comes from the ``receipted_message_id`` TLV, or, where a centre leaves it out, from the
``id:`` field of the receipt text (``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…``,
SMPP 3.4 appendix B). The state is the text's ``stat:``. Some centres give the id in hex in ``submit_sm_resp``
and in decimal in the receipt (or the other way round): ``id_forms`` lists the spellings to match against.
Anything unreadable gives None; no input raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"(?i)(?:^|\s)(id|stat|err):\s*([^\s]{0,64})")
FAILED = frozenset({"UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN"})
FINAL = FAILED | {"DELIVRD"}
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,65}$")


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    stat: str
    err: str = ""

    @property
    def delivered(self) -> bool | None:
        """True delivered, False failed for good, None not final yet (ENROUTE, ACCEPTD)."""
        if self.stat == "DELIVRD":
            return True
        return False if self.stat in FAILED else None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else ""


def parse_receipt(receipted_message_id: object, text: object) -> Receipt | None:
    """The receipt in a ``deliver_sm``'s TLV and text, or None if it names no message or no state."""
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(_text(text)[:1000]):
        fields.setdefault(key.lower(), value)
    mid = _text(receipted_message_id).strip("\x00 \t\r\n") or fields.get("id", "")
    stat = fields.get("stat", "").upper()
    if not _ID.match(mid) or not stat.isalpha():
        return None
    return Receipt(mid, stat, fields.get("err", ""))


def id_forms(message_id: str) -> list[str]:
    """The spellings under which ``message_id`` may have been stored: as is, hex↔decimal, upper/lower case."""
    forms = [message_id, message_id.upper(), message_id.lower()]
    if message_id.isdigit() and len(message_id) <= 20:
        forms.append(f"{int(message_id):X}")
    if re.fullmatch(r"[0-9A-Fa-f]{1,16}", message_id):
        forms.append(str(int(message_id, 16)))
    return list(dict.fromkeys(forms))
