"""APDU envelope, BMP table and BER-TLV codecs: round trips and clear errors on malformed input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.zvt.apdu import Apdu, decode_apdu, encode_apdu
from hardware.zvt.bmp import BMP_TABLE, Kind, amount_bcd, decode_bmps, encode_bmps, password_bcd
from hardware.zvt.errors import ApduError
from hardware.zvt.tlv import Tlv, decode_tlv, encode_tlv

dle_bytes = st.lists(st.sampled_from([0x10, 0x03, 0xFF, 0x00]) | st.integers(0, 255), max_size=400).map(bytes)


@given(st.integers(0, 255), st.integers(0, 255), dle_bytes)
def test_apdu_round_trip_including_extended_length(cls: int, instr: int, data: bytes) -> None:
    raw = encode_apdu(cls, instr, data)
    if len(data) >= 255:
        assert raw[2] == 0xFF and raw[3] | raw[4] << 8 == len(data)
    assert decode_apdu(raw) == Apdu(cls, instr, data)


def test_extended_length_is_little_endian() -> None:
    raw = encode_apdu(0x04, 0x0F, b"\x10" * 0x0102)
    assert raw[:5] == bytes.fromhex("040FFF0201")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x80", "too short"),
        (b"\x80\x00\x05\x01", "says 5 data bytes but carries 1"),
        (b"\x04\x0f\xff\x01", "extended length FF"),
    ],
)
def test_malformed_apdu_is_rejected_with_reason(raw: bytes, message: str) -> None:
    with pytest.raises(ApduError, match=message):
        decode_apdu(raw)


def _tlv_tree(depth: int = 0) -> st.SearchStrategy[Tlv]:
    primitive_tags = st.sampled_from([0x1F14, 0x1F15, 0x07, 0x12, 0x14, 0x1F4B, 0x41, 0x9F8101])
    prim = st.builds(lambda t, v: Tlv(t, v), primitive_tags, st.binary(max_size=300))
    if depth >= 2:
        return prim
    cons = st.builds(
        lambda t, kids: Tlv(t, children=tuple(kids)),
        st.sampled_from([0x24, 0x26, 0x2F]),
        st.lists(_tlv_tree(depth + 1), max_size=3),
    )
    return prim | cons


@given(st.lists(_tlv_tree(), max_size=5))
def test_tlv_round_trip(items: list[Tlv]) -> None:
    raw = encode_tlv(items)
    assert decode_tlv(raw) == tuple(items)


def test_tlv_lengths_are_ber_big_endian() -> None:
    assert encode_tlv([Tlv(0x07, b"x" * 0x80)])[:3] == bytes.fromhex("078180")
    assert encode_tlv([Tlv(0x07, b"x" * 0x0102)])[:4] == bytes.fromhex("07820102")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes.fromhex("1F"), "multi-byte tag"),
        (bytes.fromhex("1F1405AA"), "claims 5 bytes"),
        (bytes.fromhex("0783010203"), "unsupported length"),
        (bytes.fromhex("1F14"), "no length"),
    ],
)
def test_malformed_tlv_is_rejected_with_reason(raw: bytes, message: str) -> None:
    with pytest.raises(ApduError, match=message):
        decode_tlv(raw)


def _value_for(kind: Kind, size: int) -> st.SearchStrategy[Any]:
    text = st.text(alphabet="ABCXYZ /^0123456789", max_size=40)
    return {
        Kind.BYTE: st.integers(0, 255),
        Kind.BCD_INT: st.integers(0, 10 ** (2 * size) - 1),
        Kind.BCD_DIGITS: st.integers(0, 10 ** (2 * size) - 1).map(lambda n: str(n).rjust(2 * size, "0")),
        Kind.BINARY: st.binary(min_size=size, max_size=size),
        Kind.ASCII: st.text(alphabet="ABC123", min_size=size, max_size=size),
        Kind.LLVAR_NIBBLES: st.text(alphabet="0123456789E", min_size=2, max_size=38).filter(
            lambda s: len(s) % 2 == 0
        ),
        Kind.LLVAR_TEXT: text,
        Kind.LLVAR_BINARY: st.binary(max_size=99).filter(lambda b: b"\x00" not in b[:0]),
        Kind.LLLVAR_TEXT: text,
        Kind.LLLVAR_BINARY: st.binary(max_size=400),
        Kind.TLV: st.lists(_tlv_tree(1), max_size=3).map(tuple),
    }[kind]


@st.composite
def bmp_fields(draw: st.DrawFn) -> list[tuple[int, Any]]:
    tags = draw(st.lists(st.sampled_from(sorted(BMP_TABLE)), max_size=8))
    return [(t, draw(_value_for(BMP_TABLE[t].kind, BMP_TABLE[t].size))) for t in tags]


@given(bmp_fields())
def test_bmp_round_trip_through_the_table(fields: list[tuple[int, Any]]) -> None:
    raw = encode_bmps(fields)
    decoded = decode_bmps(raw)
    assert decoded.unknown == b""
    assert list(decoded.items) == fields


def test_unknown_bmp_stops_parse_and_keeps_the_rest() -> None:
    raw = encode_bmps([(0x27, 0), (0x04, 500000)]) + bytes.fromhex("F5010203")
    decoded = decode_bmps(raw)
    assert decoded.get("amount") == 500000
    assert decoded.unknown == bytes.fromhex("F5010203")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes.fromhex("040000"), r"BMP 04 \(amount\) truncated"),
        (bytes.fromhex("22F0F9EE"), r"BMP 22 \(pan\) claims 9 bytes"),
        (bytes.fromhex("22A0F1EE"), "bad LLVAR length byte 0xA0"),
        (bytes.fromhex("04000000AB0000"), "not packed BCD"),
        (bytes.fromhex("0681"), "bad TLV length"),
    ],
)
def test_malformed_bmps_are_rejected_with_the_bmp_named(raw: bytes, message: str) -> None:
    with pytest.raises(ApduError, match=message):
        decode_bmps(raw)


@pytest.mark.parametrize("bad", [-1, 10**12, 1.5, True])
def test_amount_out_of_range_or_wrong_type_is_refused(bad: Any) -> None:
    with pytest.raises(ApduError, match="amount"):
        amount_bcd(bad)


@pytest.mark.parametrize("bad", ["12345", "1234567", "12a456", "١٢٣٤٥٦"])
def test_password_must_be_six_ascii_digits(bad: str) -> None:
    with pytest.raises(ApduError, match="6 digits"):
        password_bcd(bad)
