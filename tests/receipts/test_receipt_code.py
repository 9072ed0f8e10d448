"""The verification code: encodes and verifies round trip; any altered byte, another key, or garbage is rejected."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.receipt_code import (
    ReceiptClaim,
    ReceiptCodeError,
    decode_receipt_code,
    encode_receipt_code,
    receipt_url,
    verify_receipt_code,
)
from core.signing import BadSignature, new_private_key

KEY = new_private_key()
ascii_id = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
claims = st.builds(
    ReceiptClaim,
    device_id=ascii_id,
    protocol_no=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16),
    rrn=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=32),
    amount_minor=st.integers(0, 2**64 - 1),
    currency_numeric=st.integers(1, 999),
    paid_at=st.integers(0, 2**32 - 1).map(lambda s: datetime.fromtimestamp(s, UTC)),
)


@settings(max_examples=60, deadline=None)
@given(claims)
def test_round_trip(claim: ReceiptClaim) -> None:
    code = encode_receipt_code(claim, KEY)
    assert verify_receipt_code(code, KEY.public_key()) == claim
    assert len(code) <= 400


@settings(max_examples=60, deadline=None)
@given(claims, st.data())
def test_any_altered_byte_is_rejected(claim: ReceiptClaim, data: st.DataObject) -> None:
    code = encode_receipt_code(claim, KEY)
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises((BadSignature, ReceiptCodeError)):
        verify_receipt_code(altered, KEY.public_key())


def test_code_from_another_key_does_not_verify() -> None:
    claim = ReceiptClaim("DEV-1", "P-1", "42", 100, 398, datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(BadSignature):
        verify_receipt_code(encode_receipt_code(claim, new_private_key()), KEY.public_key())


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "non-empty"),
        ("abc$", "base64url"),
        ("A" * 401, "too long"),
        ("AAAA", "too short"),
        (base64.urlsafe_b64encode(b"\x07" * 70).decode().rstrip("="), "unsupported version"),
        (base64.urlsafe_b64encode(b"\x01" * 70).decode().rstrip("="), "truncated"),
        (123, "must be a str"),
    ],
)
def test_malformed_codes_name_the_problem(code: object, message: str) -> None:
    with pytest.raises(ReceiptCodeError, match=message):
        decode_receipt_code(code)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("device_id", "", "device_id"),
        ("device_id", "DEV 1", "printable ASCII"),
        ("protocol_no", "x" * 65, "protocol_no"),
        ("amount_minor", -1, "amount_minor"),
        ("amount_minor", 1.5, "amount_minor"),
        ("currency_numeric", 0, "currency_numeric"),
        ("paid_at", datetime(2026, 3, 2), "aware"),
    ],
)
def test_bad_claims_are_refused(field: str, value: object, message: str) -> None:
    good = {
        "device_id": "DEV-1",
        "protocol_no": "P-1",
        "rrn": "",
        "amount_minor": 1,
        "currency_numeric": 398,
        "paid_at": datetime(2026, 3, 2, tzinfo=UTC),
    }
    with pytest.raises(ReceiptCodeError, match=message):
        ReceiptClaim(**{**good, field: value})  # type: ignore[arg-type]


def test_url_points_at_the_public_page() -> None:
    assert receipt_url("https://pk.example/", "abc") == "https://pk.example/r/abc"
