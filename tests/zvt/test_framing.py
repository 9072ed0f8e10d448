"""Framing: DLE stuffing round trips with payloads full of 0x10, any chunking, garbage, bad CRC, malformed frames."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.zvt.framing import ACK, NAK, BadFrame, Control, Frame, FrameDecoder, encode_frame

dle_heavy = st.lists(
    st.sampled_from([0x10, 0x02, 0x03, 0x06, 0x15, 0x00, 0xFF]) | st.integers(0, 255),
    min_size=1,
    max_size=300,
).map(bytes)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@given(dle_heavy)
def test_round_trip_one_byte_at_a_time(apdu: bytes) -> None:
    wire = encode_frame(apdu)
    dec = FrameDecoder()
    events = [e for b in wire for e in dec.feed(bytes((b,)))]
    assert events == [Frame(apdu)]
    assert not dec.in_frame


@given(st.lists(dle_heavy, min_size=1, max_size=5), st.lists(st.integers(0, 10_000), max_size=20))
def test_many_frames_in_random_chunks(apdus: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(a) for a in apdus)
    dec = FrameDecoder()
    events = [e for chunk in _chunks(wire, cuts) for e in dec.feed(chunk)]
    assert events == [Frame(a) for a in apdus]


@given(dle_heavy)
def test_stuffing_doubles_every_dle_and_nothing_else(apdu: bytes) -> None:
    wire = encode_frame(apdu)
    body = wire[2:-4]
    assert body.replace(b"\x10\x10", b"\x10") == apdu
    assert len(body) == len(apdu) + apdu.count(0x10)


@settings(max_examples=200)
@given(dle_heavy, st.integers(0, 10_000), st.integers(1, 255))
def test_any_single_corrupted_byte_is_never_accepted_as_a_different_frame(
    apdu: bytes, pos: int, flip: int
) -> None:
    wire = bytearray(encode_frame(apdu))
    i = 2 + pos % (len(wire) - 2)
    wire[i] ^= flip
    events = FrameDecoder().feed(bytes(wire) + encode_frame(b"\x80\x00\x00"))
    frames = [e.apdu for e in events if isinstance(e, Frame)]
    # the corrupted frame never comes out as a good frame with other content (recovery is the link's repeat)
    assert all(f in (apdu, b"\x80\x00\x00") for f in frames)


def test_garbage_before_dle_stx_is_skipped_and_counted() -> None:
    dec = FrameDecoder()
    events = dec.feed(b"\x00\xff\x41\x10\x10\x42" + encode_frame(b"\x80\x00\x00"))
    assert events == [Frame(b"\x80\x00\x00")]
    assert dec.garbage_bytes >= 4


def test_ack_and_nak_between_frames_are_reported() -> None:
    dec = FrameDecoder()
    events = dec.feed(bytes((ACK,)) + encode_frame(b"\x06\x0f\x00") + bytes((NAK,)))
    assert events == [Control(ACK), Frame(b"\x06\x0f\x00"), Control(NAK)]


def test_bad_crc_is_reported_with_expected_value() -> None:
    wire = bytearray(encode_frame(b"\x80\x00\x00"))
    wire[-1] ^= 0xFF
    [event] = FrameDecoder().feed(bytes(wire))
    assert isinstance(event, BadFrame)
    assert "bad CRC" in event.reason


def test_single_dle_followed_by_data_byte_is_malformed() -> None:
    [event] = FrameDecoder().feed(b"\x10\x02\x80\x10\x41\x00")
    assert isinstance(event, BadFrame)
    assert "DLE followed by 0x41" in event.reason


def test_abort_reports_partial_frame_for_t1() -> None:
    dec = FrameDecoder()
    dec.feed(encode_frame(b"\x04\x0f\x00")[:4])
    assert dec.in_frame
    bad = dec.abort()
    assert bad is not None and "T1" in bad.reason
    assert dec.feed(encode_frame(b"\x80\x00\x00")) == [Frame(b"\x80\x00\x00")]


def test_oversized_frame_is_rejected_not_buffered_forever() -> None:
    dec = FrameDecoder(max_apdu=100)
    events = dec.feed(b"\x10\x02" + b"\x41" * 150)
    assert events and isinstance(events[0], BadFrame)
    assert "longer than 100" in events[0].reason


def test_empty_apdu_cannot_be_framed() -> None:
    import pytest

    with pytest.raises(ValueError, match="empty"):
        encode_frame(b"")
