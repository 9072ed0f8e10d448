"""The device reads a server's Retry-After header: any text gives seconds within the bound or None, never
an exception (a hostile or broken server cannot stop the uploader)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.upload.client import MAX_RETRY_AFTER_S, retry_after_seconds


@given(st.text())
def test_any_retry_after_text_gives_bounded_seconds_or_none(value: str) -> None:
    seconds = retry_after_seconds(value)
    assert seconds is None or 0 <= seconds <= MAX_RETRY_AFTER_S


def test_the_forms_a_server_sends_and_digits_float_refuses() -> None:
    assert retry_after_seconds("15") == 15.0 and retry_after_seconds(" 3 ") == 3.0
    assert retry_after_seconds("²") is None and retry_after_seconds("١٢") is None
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT") is None and retry_after_seconds(None) is None
