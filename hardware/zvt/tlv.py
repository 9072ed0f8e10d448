"""BER-TLV as used inside ZVT BMP 06: multi-byte tags (1F14 ...), lengths ``81 n`` / ``82 hi lo``, constructed tags.

A tag whose first byte has bit 0x20 set is constructed: its value is itself a list of TLV items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hardware.zvt.errors import ApduError


@dataclass(frozen=True, slots=True)
class Tlv:
    """One TLV item: primitive (``value`` bytes) or constructed (``children``)."""

    tag: int
    value: bytes = b""
    children: tuple[Tlv, ...] = field(default=())

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)


def tag_bytes(tag: int) -> bytes:
    if tag < 0:
        raise ApduError(f"negative TLV tag {tag}")
    out = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    return out


def is_constructed(tag: int) -> bool:
    return bool(tag_bytes(tag)[0] & 0x20)


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise ApduError(f"TLV value of {n} bytes is too long (max 65535)")


def encode_tlv(items: Iterable[Tlv]) -> bytes:
    out = bytearray()
    for item in items:
        if item.constructed:
            if item.value:
                raise ApduError(f"constructed tag {item.tag:X} takes children, not a raw value")
            value = encode_tlv(item.children)
        else:
            if item.children:
                raise ApduError(f"primitive tag {item.tag:X} cannot have children")
            value = item.value
        out += tag_bytes(item.tag) + encode_length(len(value)) + value
    return bytes(out)


def _read_tag(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise ApduError("TLV truncated before the tag")
    first = data[i]
    tag = first
    i += 1
    if first & 0x1F == 0x1F:
        while True:
            if i >= len(data):
                raise ApduError(f"TLV multi-byte tag {tag:X} truncated")
            b = data[i]
            tag = (tag << 8) | b
            i += 1
            if not b & 0x80:
                break
            if tag > 0xFFFFFFFF:
                raise ApduError("TLV tag longer than 4 bytes")
    return tag, i


def _read_length(data: bytes, i: int, tag: int) -> tuple[int, int]:
    if i >= len(data):
        raise ApduError(f"TLV tag {tag:X} has no length")
    b = data[i]
    i += 1
    if b < 0x80:
        return b, i
    count = b & 0x7F
    if count not in (1, 2):
        raise ApduError(f"TLV tag {tag:X}: unsupported length form 0x{b:02X}")
    if i + count > len(data):
        raise ApduError(f"TLV tag {tag:X}: length bytes truncated")
    return int.from_bytes(data[i : i + count], "big"), i + count


def decode_tlv(data: bytes, depth: int = 0) -> tuple[Tlv, ...]:
    """Parse a TLV list; any truncation or overrun raises ApduError naming the tag."""
    if depth > 8:
        raise ApduError("TLV nested deeper than 8 levels")
    items: list[Tlv] = []
    i = 0
    while i < len(data):
        tag, i = _read_tag(data, i)
        n, i = _read_length(data, i, tag)
        if i + n > len(data):
            raise ApduError(f"TLV tag {tag:X} claims {n} bytes but only {len(data) - i} remain")
        value = data[i : i + n]
        i += n
        if is_constructed(tag):
            items.append(Tlv(tag, children=decode_tlv(value, depth + 1)))
        else:
            items.append(Tlv(tag, value))
    return tuple(items)


def find(items: Sequence[Tlv], tag: int) -> Tlv | None:
    """First item with ``tag``, searching constructed items depth-first."""
    for item in items:
        if item.tag == tag:
            return item
        if item.children:
            hit = find(item.children, tag)
            if hit is not None:
                return hit
    return None
