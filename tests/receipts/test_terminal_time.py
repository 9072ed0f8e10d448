"""The terminal's clock as ZVT reports it (MMDDhhmmss, local, no year) read as a local date and time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.terminal_time import terminal_local_time, terminal_time_text


@pytest.mark.parametrize(
    ("raw", "near", "shown"),
    [
        ("1207005320", datetime(2026, 12, 6, 19, 53, 20, tzinfo=UTC), "07.12.2026 00:53:20"),
        # paid a minute before midnight on 31 December, the record read on 1 January: last year's date
        ("1231235930", datetime(2027, 1, 1, 0, 5, tzinfo=UTC), "31.12.2026 23:59:30"),
        ("0101000500", datetime(2026, 12, 31, 19, 10, tzinfo=UTC), "01.01.2027 00:05:00"),
        ("0229120000", datetime(2028, 2, 29, 7, 0, tzinfo=UTC), "29.02.2028 12:00:00"),
    ],
)
def test_terminal_time_reads_as_the_nearest_local_date(raw: str, near: datetime, shown: str) -> None:
    assert terminal_time_text(raw, near, "Asia/Almaty") == shown


@pytest.mark.parametrize(
    "raw", ["", "2026-03-02 09:21:05", "1332000000", "0230120000", "12070053", "abcdefghij"]
)
def test_a_value_that_is_not_a_terminal_time_is_shown_as_it_came(raw: str) -> None:
    near = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert terminal_local_time(raw, near, "Asia/Almaty") is None
    assert terminal_time_text(raw, near, "Asia/Almaty") == raw
