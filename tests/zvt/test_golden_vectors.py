"""Every golden wire vector of zvt.md §13, byte for byte, built by our command builders and parsed back."""

from __future__ import annotations

import pytest

from hardware.zvt import commands as c
from hardware.zvt.apdu import decode_apdu
from hardware.zvt.crc import crc16_kermit, frame_crc
from hardware.zvt.framing import Frame, FrameDecoder, encode_frame

GOLDEN: list[tuple[str, bytes]] = [
    ("10 02 06 00 06 12 34 56 BA 09 78 10 03 24 C3", c.registration("123456", 0xBA, 978).encode()),
    ("10 02 06 93 03 12 34 56 10 03 CA A4", c.initialisation("123456").encode()),
    (
        "10 02 06 01 0A 04 00 00 00 01 10 10 00 49 09 78 10 03 F2 FF",
        c.authorisation(11000, 978, None).encode(),
    ),
    ("10 02 06 70 00 10 03 D9 F9", c.diagnosis().encode()),
    (
        "10 02 06 D1 19 00 47 65 73 61 6D 74 20 20 20 20 20 20 30 20 20 20 20 20 20 20 30 2C 30 30 10 03 B5 AB",
        bytes.fromhex("06D119") + b"\x00Gesamt      0       0,00",
    ),
    ("10 02 80 00 00 10 03 F5 1F", c.ACK_APDU),
    ("10 02 84 9C 00 10 03 C3 41", c.negative_apdu(0x9C)),
    ("10 02 06 18 00 10 03 56 3A", c.reset_terminal().encode()),
    ("10 02 05 01 03 12 34 56 10 03 E0 43", c.status_enquiry("123456").encode()),
    ("10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11", c.status_completion_apdu("2.14.15", 0)),
    ("10 02 06 0F 00 10 03 C6 33", c.completion_apdu()),
    ("10 02 04 FF 01 0A 10 03 F5 7D", c.intermediate_apdu(0x0A)),
    ("10 02 04 FF 01 68 10 03 10 2B", c.intermediate_apdu(0x68)),
    ("10 02 06 B0 00 10 03 43 F3", c.abort().encode()),
    ("10 02 06 01 0C 04 00 00 00 50 00 00 49 03 98 19 42 10 03 5F 08", c.authorisation(500000).encode()),
    ("10 02 06 C0 09 3C 19 50 06 04 1F 15 01 80 10 03 AD 86", c.read_card(60).encode()),
    ("10 02 06 50 03 00 00 00 10 03 FB 37", c.end_of_day().encode()),
    ("10 02 05 01 03 00 00 00 10 03 DF DB", c.status_enquiry().encode()),
    ("10 02 06 30 06 00 00 00 87 00 12 10 03 3B 13", c.reversal(12).encode()),
    ("10 02 06 00 08 00 00 00 3E 03 98 03 00 10 03 B2 5B", c.registration(service_byte=0).encode()),
]


def test_crc_check_value_is_kermit_0x2189() -> None:
    assert crc16_kermit(b"123456789") == 0x2189


@pytest.mark.parametrize(("wire_hex", "apdu"), GOLDEN, ids=[g[0][6:17] for g in GOLDEN])
def test_golden_frame_is_built_byte_for_byte(wire_hex: str, apdu: bytes) -> None:
    assert encode_frame(apdu) == bytes.fromhex(wire_hex)


@pytest.mark.parametrize(("wire_hex", "apdu"), GOLDEN, ids=[g[0][6:17] for g in GOLDEN])
def test_golden_frame_decodes_to_its_apdu(wire_hex: str, apdu: bytes) -> None:
    wire = bytes.fromhex(wire_hex)
    assert FrameDecoder().feed(wire) == [Frame(apdu)]
    decoded = decode_apdu(apdu)
    assert decoded.encode() == apdu
    assert frame_crc(apdu) == wire[-2:]


def test_crc_bytes_equal_to_dle_are_sent_raw() -> None:
    wire = encode_frame(bytes.fromhex("04FF0168"))
    assert wire.endswith(b"\x10\x03\x10\x2b")
    dec = FrameDecoder()
    assert [e for b in wire for e in dec.feed(bytes((b,)))] == [Frame(bytes.fromhex("04FF0168"))]


def test_status_completion_vector_parses_version_and_status() -> None:
    raw = bytes.fromhex("060F0BF0F0F7322E31342E313500")
    comp = c.parse_completion(decode_apdu(raw), c.status_enquiry("123456"))
    assert comp.sw_version == "2.14.15"
    assert comp.terminal_status == 0


def test_amount_examples_from_the_reference() -> None:
    from hardware.zvt.bmp import amount_bcd, currency_bcd, password_bcd

    assert amount_bcd(500000) == bytes.fromhex("000000500000")
    assert amount_bcd(1081250) == bytes.fromhex("000001081250")
    assert currency_bcd(398) == bytes.fromhex("0398")
    assert currency_bcd(978) == bytes.fromhex("0978")
    assert password_bcd("123456") == bytes.fromhex("123456")


def test_portalum_masked_pan_sample_decodes() -> None:
    from hardware.zvt.bmp import decode_bmps, encode_bmps

    raw = bytes.fromhex("22F0F8EEEEEEEEEEEE4771")
    fields = decode_bmps(raw)
    assert fields.get("pan") == "EEEEEEEEEEEE4771"
    assert encode_bmps(fields.items) == raw
