"""ZVT bitmaps (BMPs): one declarative table of tag → name → field kind, and the codecs that read it.

Also the primitive encodings the commands need: packed BCD numbers (amount, currency, password), LLVAR /
LLLVAR lengths and nibble strings with ``E`` for a masked digit. Decoding never guesses: an unknown BMP
stops the parse and the rest is returned as ``unknown`` so the caller can report it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hardware.zvt.errors import ApduError
from hardware.zvt.tlv import Tlv, decode_tlv, encode_tlv
from hardware.zvt.tlv import encode_length as ber_length

TEXT_CODEC = "cp437"


class Kind(enum.Enum):
    BYTE = "byte"  # one binary byte → int
    BCD_INT = "bcd_int"  # fixed packed BCD → int
    BCD_DIGITS = "bcd_digits"  # fixed packed BCD → str of digits (time, date, TID)
    BINARY = "binary"  # fixed bytes
    ASCII = "ascii"  # fixed text
    LLVAR_NIBBLES = "llvar_nibbles"  # LLVAR of BCD nibbles, E = masked digit, F = pad → str
    LLVAR_TEXT = "llvar_text"
    LLVAR_BINARY = "llvar_binary"
    LLLVAR_TEXT = "lllvar_text"
    LLLVAR_BINARY = "lllvar_binary"
    TLV = "tlv"  # BER length, TLV items


@dataclass(frozen=True, slots=True)
class BmpSpec:
    tag: int
    name: str
    kind: Kind
    size: int = 0  # bytes, for the fixed kinds


BMP_TABLE: dict[int, BmpSpec] = {
    s.tag: s
    for s in (
        BmpSpec(0x01, "timeout", Kind.BYTE),
        BmpSpec(0x02, "max_status_infos", Kind.BYTE),
        BmpSpec(0x03, "service_byte", Kind.BYTE),
        BmpSpec(0x04, "amount", Kind.BCD_INT, 6),
        BmpSpec(0x05, "pump_no", Kind.BYTE),
        BmpSpec(0x06, "tlv", Kind.TLV),
        BmpSpec(0x0B, "trace", Kind.BCD_INT, 3),
        BmpSpec(0x0C, "time", Kind.BCD_DIGITS, 3),
        BmpSpec(0x0D, "date", Kind.BCD_DIGITS, 2),
        BmpSpec(0x0E, "expiry", Kind.BCD_DIGITS, 2),
        BmpSpec(0x17, "card_seq_no", Kind.BCD_INT, 2),
        BmpSpec(0x19, "pay_type", Kind.BYTE),
        BmpSpec(0x22, "pan", Kind.LLVAR_NIBBLES),
        BmpSpec(0x23, "track2", Kind.LLVAR_NIBBLES),
        BmpSpec(0x24, "track3", Kind.LLLVAR_BINARY),
        BmpSpec(0x27, "result_code", Kind.BYTE),
        BmpSpec(0x29, "terminal_id", Kind.BCD_DIGITS, 4),
        BmpSpec(0x2A, "vu_number", Kind.ASCII, 15),
        BmpSpec(0x2D, "track1", Kind.LLVAR_TEXT),
        BmpSpec(0x2E, "sync_chip_data", Kind.LLLVAR_BINARY),
        BmpSpec(0x37, "original_trace", Kind.BCD_INT, 3),
        BmpSpec(0x3A, "cvv", Kind.BCD_DIGITS, 2),
        BmpSpec(0x3B, "aid", Kind.BINARY, 8),
        BmpSpec(0x3C, "additional_text", Kind.LLLVAR_TEXT),
        BmpSpec(0x49, "currency", Kind.BCD_INT, 2),
        BmpSpec(0x60, "individual_totals", Kind.LLLVAR_BINARY),
        BmpSpec(0x87, "receipt_no", Kind.BCD_INT, 2),
        BmpSpec(0x88, "turnover_no", Kind.BCD_INT, 3),
        BmpSpec(0x8A, "card_type", Kind.BYTE),
        BmpSpec(0x8B, "card_name", Kind.LLVAR_TEXT),
        BmpSpec(0x8C, "card_type_id", Kind.BYTE),
        BmpSpec(0xA0, "host_result_code", Kind.BYTE),
        BmpSpec(0xA7, "chip_ef_id", Kind.LLVAR_BINARY),
        BmpSpec(0xAA, "date_full", Kind.BCD_DIGITS, 3),
        BmpSpec(0xAF, "ef_info", Kind.LLLVAR_BINARY),
        BmpSpec(0xBA, "aid_parameter", Kind.BINARY, 5),
        BmpSpec(0xD2, "card_output", Kind.BYTE),
    )
}
TAG_BY_NAME: dict[str, int] = {s.name: s.tag for s in BMP_TABLE.values()}


# ------------------------------------------------------------------ primitives
def bcd_encode(digits: str, nbytes: int) -> bytes:
    """Packed BCD of a digit string, left-padded with zeros to ``nbytes``."""
    if not digits.isdigit() or not digits.isascii():
        raise ApduError(f"BCD needs decimal digits, got {digits!r}")
    if len(digits) > 2 * nbytes:
        raise ApduError(f"{digits!r} does not fit in {nbytes} BCD bytes")
    return bytes.fromhex(digits.rjust(2 * nbytes, "0"))


def bcd_decode(raw: bytes) -> str:
    text = raw.hex().upper()
    if not text.isdigit():
        raise ApduError(f"not packed BCD: {raw.hex(' ').upper()}")
    return text


def amount_bcd(minor: int) -> bytes:
    """Amount in minor units as 6 BCD bytes: 500000 (5 000.00) → 00 00 00 50 00 00."""
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0 or minor > 999_999_999_999:
        raise ApduError(f"amount must be 0..999999999999 minor units, got {minor!r}")
    return bcd_encode(str(minor), 6)


def currency_bcd(numeric: int) -> bytes:
    """ISO 4217 numeric code as 2 BCD bytes: 398 (KZT) → 03 98."""
    if not isinstance(numeric, int) or not 0 < numeric < 1000:
        raise ApduError(f"currency must be an ISO 4217 numeric code 1..999, got {numeric!r}")
    return bcd_encode(str(numeric), 2)


def password_bcd(password: str) -> bytes:
    """6-digit terminal password as 3 BCD bytes: "123456" → 12 34 56."""
    if len(password) != 6 or not password.isdigit() or not password.isascii():
        raise ApduError("terminal password must be exactly 6 digits")
    return bcd_encode(password, 3)


def var_length(n: int, digits: int) -> bytes:
    if n >= 10**digits:
        raise ApduError(f"{n} bytes does not fit an {'L' * digits}VAR length")
    return bytes(0xF0 | int(d) for d in str(n).rjust(digits, "0"))


def read_var_length(data: bytes, i: int, digits: int, what: str) -> tuple[int, int]:
    if i + digits > len(data):
        raise ApduError(f"{what}: truncated {'L' * digits}VAR length")
    n = 0
    for b in data[i : i + digits]:
        if b >> 4 != 0xF or (b & 0xF) > 9:
            raise ApduError(f"{what}: bad {'L' * digits}VAR length byte 0x{b:02X}")
        n = n * 10 + (b & 0xF)
    return n, i + digits


def nibbles_encode(text: str) -> bytes:
    """Digits (and E for a masked digit, D for a track-2 separator) as nibbles, odd length padded with F."""
    t = text.upper()
    if not t or any(c not in "0123456789DE" for c in t):
        raise ApduError(f"nibble string must be digits, D or E, got {text!r}")
    if len(t) % 2:
        t += "F"
    return bytes.fromhex(t)


def nibbles_decode(raw: bytes) -> str:
    text = raw.hex().upper()
    if text.endswith("F"):
        text = text[:-1]
    if any(c not in "0123456789DE" for c in text):
        raise ApduError(f"bad nibble string {raw.hex(' ').upper()}")
    return text


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode(TEXT_CODEC)


# ----------------------------------------------------------------- BMP codec
@dataclass(frozen=True, slots=True)
class BmpSet:
    """Decoded BMPs in wire order; ``unknown`` holds the bytes after the first BMP not in the table."""

    items: tuple[tuple[int, Any], ...] = ()
    unknown: bytes = b""

    def get(self, name: str, default: Any = None) -> Any:
        tag = TAG_BY_NAME[name]
        for t, v in self.items:
            if t == tag:
                return v
        return default

    def names(self) -> dict[str, Any]:
        return {BMP_TABLE[t].name: v for t, v in self.items}


def encode_field(tag: int, value: Any) -> bytes:
    spec = BMP_TABLE.get(tag)
    if spec is None:
        raise ApduError(f"BMP {tag:02X} is not in the table")
    k = spec.kind
    try:
        if k is Kind.BYTE:
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise ApduError(f"BMP {tag:02X} ({spec.name}) needs one byte 0..255, got {value!r}")
            body = bytes((value,))
        elif k is Kind.BCD_INT:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ApduError(f"BMP {tag:02X} ({spec.name}) needs a non-negative int, got {value!r}")
            body = bcd_encode(str(value), spec.size)
        elif k is Kind.BCD_DIGITS:
            body = bcd_encode(str(value), spec.size)
        elif k is Kind.BINARY:
            body = bytes(value)
            if len(body) != spec.size:
                raise ApduError(f"BMP {tag:02X} ({spec.name}) needs {spec.size} bytes")
        elif k is Kind.ASCII:
            body = str(value).encode(TEXT_CODEC).ljust(spec.size, b" ")[: spec.size]
        elif k is Kind.LLVAR_NIBBLES:
            raw = nibbles_encode(str(value))
            body = var_length(len(raw), 2) + raw
        elif k is Kind.LLVAR_TEXT:
            raw = str(value).encode(TEXT_CODEC)
            body = var_length(len(raw), 2) + raw
        elif k is Kind.LLVAR_BINARY:
            body = var_length(len(value), 2) + bytes(value)
        elif k is Kind.LLLVAR_TEXT:
            raw = str(value).encode(TEXT_CODEC)
            body = var_length(len(raw), 3) + raw
        elif k is Kind.LLLVAR_BINARY:
            body = var_length(len(value), 3) + bytes(value)
        else:  # TLV
            raw = encode_tlv(value)
            body = ber_length(len(raw)) + raw
    except UnicodeEncodeError as exc:
        raise ApduError(f"BMP {tag:02X} ({spec.name}): text not encodable in {TEXT_CODEC}") from exc
    return bytes((tag,)) + body


def encode_bmps(fields: Iterable[tuple[int, Any]]) -> bytes:
    return b"".join(encode_field(tag, value) for tag, value in fields)


def _decode_ber_length(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise ApduError("BMP 06: missing TLV length")
    b = data[i]
    if b < 0x80:
        return b, i + 1
    count = b & 0x7F
    if count not in (1, 2) or i + 1 + count > len(data):
        raise ApduError(f"BMP 06: bad TLV length 0x{b:02X}")
    return int.from_bytes(data[i + 1 : i + 1 + count], "big"), i + 1 + count


def decode_bmps(data: bytes) -> BmpSet:
    """Parse BMPs until the end or the first unknown tag; truncation raises ApduError naming the BMP."""
    items: list[tuple[int, Any]] = []
    i = 0
    while i < len(data):
        tag = data[i]
        spec = BMP_TABLE.get(tag)
        if spec is None:
            return BmpSet(tuple(items), bytes(data[i:]))
        i += 1
        what = f"BMP {tag:02X} ({spec.name})"
        k = spec.kind
        if k in (Kind.BYTE, Kind.BCD_INT, Kind.BCD_DIGITS, Kind.BINARY, Kind.ASCII):
            size = 1 if k is Kind.BYTE else spec.size
            if i + size > len(data):
                raise ApduError(f"{what} truncated: needs {size} bytes, {len(data) - i} left")
            raw = data[i : i + size]
            i += size
            value: Any
            if k is Kind.BYTE:
                value = raw[0]
            elif k is Kind.BCD_INT:
                value = int(bcd_decode(raw))
            elif k is Kind.BCD_DIGITS:
                value = bcd_decode(raw)
            elif k is Kind.BINARY:
                value = bytes(raw)
            else:
                value = _text(raw).rstrip(" ")
        elif k is Kind.TLV:
            n, i = _decode_ber_length(data, i)
            if i + n > len(data):
                raise ApduError(f"{what} claims {n} bytes but only {len(data) - i} remain")
            value = decode_tlv(data[i : i + n])
            i += n
        else:
            digits = 3 if k in (Kind.LLLVAR_TEXT, Kind.LLLVAR_BINARY) else 2
            n, i = read_var_length(data, i, digits, what)
            if i + n > len(data):
                raise ApduError(f"{what} claims {n} bytes but only {len(data) - i} remain")
            raw = data[i : i + n]
            i += n
            if k is Kind.LLVAR_NIBBLES:
                value = nibbles_decode(raw)
            elif k in (Kind.LLVAR_TEXT, Kind.LLLVAR_TEXT):
                value = _text(raw)
            else:
                value = bytes(raw)
        items.append((tag, value))
    return BmpSet(tuple(items))


def tlv_value(items: Sequence[Tlv] | None, tag: int) -> bytes | None:
    from hardware.zvt.tlv import find

    if not items:
        return None
    hit = find(items, tag)
    return hit.value if hit is not None else None


@dataclass(frozen=True, slots=True)
class FieldList:
    """Builder for an ordered BMP list (keeps commands declarative)."""

    fields: list[tuple[int, Any]] = field(default_factory=list)

    def add(self, name: str, value: Any) -> FieldList:
        if value is not None:
            self.fields.append((TAG_BY_NAME[name], value))
        return self

    def encode(self) -> bytes:
        return encode_bmps(self.fields)
