"""The simulator's ESC/POS parser: table-driven, split-anywhere safe, exact about lengths, loud about unknowns."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.printer.parser import Command, EscPosParser, Event, ParseError, TextRun, Unknown

STREAM = (
    b"\x1b@\x1bt\x35Hello\n"  # init, code table 53, text
    + b"\x1dv0\x00\x01\x00\x02\x00\xff\x81"  # GS v 0: 1 byte wide, 2 rows
    + b"\x1d(k\x03\x001Q0"  # GS ( k print QR
    + b"\x10\x04\x04"  # DLE EOT 4
    + b"\x1d(H\x06\x0000ABCD"  # GS ( H fn 48
    + b"\x1dV\x00"  # cut
)


def _summary(events: list[Event]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for e in events:
        if isinstance(e, TextRun):
            if out and out[-1][0] == "text":
                out[-1] = ("text", out[-1][1] + e.data)
            else:
                out.append(("text", e.data))
        elif isinstance(e, Command):
            out.append((e.name, e.args))
        else:
            out.append(("unknown", e.data))
    return out


def test_golden_stream_parses_into_named_commands() -> None:
    events = _summary(EscPosParser(strict=True).feed(STREAM))
    assert events == [
        ("initialize", b""),
        ("select_code_table", b"\x35"),
        ("text", b"Hello\n"),
        ("raster_image", b"\x00\x01\x00\x02\x00\xff\x81"),
        ("two_d_code", b"\x03\x001Q0"),
        ("realtime_status", b"\x04"),
        ("print_confirmation", b"\x06\x0000ABCD"),
        ("cut", b"\x00"),
    ]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_splitting_the_stream_anywhere_gives_the_same_events(cuts: list[int]) -> None:
    parser = EscPosParser(strict=True)
    events = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for a, b in itertools.pairwise(bounds):
        events += parser.feed(STREAM[a:b])
    assert _summary(events) == _summary(EscPosParser(strict=True).feed(STREAM))
    assert parser.pending == 0


def test_incomplete_raster_waits_for_all_its_bytes() -> None:
    parser = EscPosParser()
    assert parser.feed(b"\x1dv0\x00\x02\x00\x03\x00" + b"\x00" * 5) == []
    assert parser.pending == 13
    (cmd,) = parser.feed(b"\x00")
    assert isinstance(cmd, Command) and cmd.name == "raster_image" and len(cmd.args) == 5 + 6


def test_unknown_command_is_reported_not_dropped() -> None:
    parser = EscPosParser()
    events = parser.feed(b"A\x1b\x99B")
    assert [type(e) for e in events] == [TextRun, Unknown, TextRun]
    assert parser.unknown == [b"\x1b\x99"]


def test_strict_mode_raises_on_unknown_command() -> None:
    with pytest.raises(ParseError, match="1b 99"):
        EscPosParser(strict=True).feed(b"\x1b\x99")


def test_absurd_raster_size_is_refused() -> None:
    with pytest.raises(ParseError, match="raster_image"):
        EscPosParser().feed(b"\x1dv0\x00\xff\xff\xff\xff")
