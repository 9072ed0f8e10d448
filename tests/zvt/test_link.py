"""Link layer: ACK/NAK, T1 inter-byte gap, T2 acknowledgement wait, two repeats, NAK on a bad frame."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.clock import FakeClock
from hardware.zvt.errors import LinkError, ResponseTimeout
from hardware.zvt.framing import ACK, NAK, encode_frame
from hardware.zvt.link import Answer, Link, LinkFaults

APDU = bytes.fromhex("0501030000 00".replace(" ", ""))


def _peer(replies: list[bytes]) -> Callable[[bytes], bytes]:
    def on_write(data: bytes) -> bytes:
        if data[:2] == b"\x10\x02":
            return replies.pop(0) if replies else b""
        return b""

    return on_write


def test_frame_acknowledged_first_time(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted(_peer([bytes((ACK,))]))
    Link(ch, clock).send(APDU)
    assert ch.written == [encode_frame(APDU)]


@pytest.mark.parametrize("naks", [1, 2])
def test_nak_makes_the_sender_repeat_up_to_twice(clock: FakeClock, scripted: Callable, naks: int) -> None:
    ch = scripted(_peer([bytes((NAK,))] * naks + [bytes((ACK,))]))
    link = Link(ch, clock)
    link.send(APDU)
    assert ch.written == [encode_frame(APDU)] * (naks + 1)
    assert link.stats.repeats == naks


def test_three_naks_are_a_transmission_error(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted(_peer([bytes((NAK,))] * 3))
    with pytest.raises(LinkError, match="not acknowledged after 3 sends"):
        Link(ch, clock).send(APDU)
    assert len(ch.written) == 3


def test_missing_ack_repeats_after_t2(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted(_peer([b"", bytes((ACK,))]))
    start = clock.monotonic()
    link = Link(ch, clock)
    link.send(APDU)
    assert len(ch.written) == 2
    assert clock.monotonic() - start >= 5.0


def test_no_ack_at_all_fails_after_three_t2_waits(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted(_peer([]))
    start = clock.monotonic()
    with pytest.raises(LinkError, match="no ACK within T2"):
        Link(ch, clock).send(APDU)
    assert len(ch.written) == 3
    assert 15.0 <= clock.monotonic() - start < 16.0


@pytest.mark.parametrize(("delay", "sends"), [(4.9, 1), (5.1, 2)])
def test_ack_at_4_9_s_is_taken_at_5_1_s_is_late(clock: FakeClock, delay: float, sends: int) -> None:
    """An ACK that arrives after T2 does not count: the frame is repeated."""
    written: list[bytes] = []
    pending: list[tuple[float, bytes]] = []

    class TimedChannel:
        def write(self, data: bytes) -> None:
            written.append(data)
            if data[:2] == b"\x10\x02":
                pending.append((clock.monotonic() + (delay if len(written) == 1 else 0.0), bytes((ACK,))))

        def read(self, timeout: float) -> bytes:
            if pending and pending[0][0] <= clock.monotonic() + timeout:
                at, data = pending.pop(0)
                if at > clock.monotonic():
                    clock.advance(at - clock.monotonic())
                return data
            clock.advance(timeout)
            return b""

    link = Link(TimedChannel(), clock)
    link.send(APDU)
    assert len(written) == sends
    assert link.stats.repeats == sends - 1


def test_received_frame_is_acked_before_it_is_delivered(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted()
    ch.push(b"\x00\x33" + encode_frame(b"\x80\x00\x00"))
    link = Link(ch, clock)
    assert link.receive(1.0) == b"\x80\x00\x00"
    assert ch.written == [bytes((ACK,))]


def test_bad_crc_is_naked_and_the_repeat_is_taken(clock: FakeClock, scripted: Callable) -> None:
    bad = bytearray(encode_frame(b"\x04\x0f\x00"))
    bad[-2] ^= 0x55
    ch = scripted(lambda data: encode_frame(b"\x04\x0f\x00") if data == bytes((NAK,)) else b"")
    ch.push(bytes(bad))
    link = Link(ch, clock)
    assert link.receive(1.0) == b"\x04\x0f\x00"
    assert ch.written == [bytes((NAK,)), bytes((ACK,))]


def test_three_bad_frames_in_a_row_are_a_transmission_error(clock: FakeClock, scripted: Callable) -> None:
    bad = bytearray(encode_frame(b"\x04\x0f\x00"))
    bad[-1] ^= 1
    ch = scripted()
    ch.push(bytes(bad) * 3)
    with pytest.raises(LinkError, match="3 bad frames in a row"):
        Link(ch, clock).receive(30.0)
    assert ch.written == [bytes((NAK,))] * 3


def test_gap_over_t1_inside_a_frame_is_naked(clock: FakeClock) -> None:
    wire = encode_frame(b"\x06\x0f\x00")
    script: list[tuple[float, bytes]] = [(0.0, wire[:4]), (0.25, wire[4:]), (0.0, wire)]
    written: list[bytes] = []

    class GapChannel:
        def write(self, data: bytes) -> None:
            written.append(data)

        def read(self, timeout: float) -> bytes:
            if script:
                gap, data = script[0]
                if gap <= timeout:
                    script.pop(0)
                    clock.advance(gap)
                    return data
                script[0] = (gap - timeout, data)
            clock.advance(timeout)
            return b""

    link = Link(GapChannel(), clock)
    assert link.receive(5.0) == b"\x06\x0f\x00"
    assert written == [bytes((NAK,)), bytes((ACK,))]
    assert "T1" in link.stats.reasons[0]


def test_gap_under_t1_is_fine(clock: FakeClock) -> None:
    wire = encode_frame(b"\x06\x0f\x00")
    parts = [wire[:3], wire[3:7], wire[7:]]

    class SlowChannel:
        def write(self, data: bytes) -> None:
            assert data == bytes((ACK,))

        def read(self, timeout: float) -> bytes:
            clock.advance(min(timeout, 0.15))
            return parts.pop(0) if parts else b""

    assert Link(SlowChannel(), clock).receive(5.0) == b"\x06\x0f\x00"


def test_receive_times_out_on_the_clock(clock: FakeClock, scripted: Callable) -> None:
    start = clock.monotonic()
    with pytest.raises(ResponseTimeout):
        Link(scripted(), clock).receive(5.0)
    assert clock.monotonic() - start == pytest.approx(5.0, abs=0.06)


def test_a_frame_that_arrives_while_waiting_for_ack_is_kept(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted(_peer([bytes((ACK,)) + encode_frame(b"\x80\x00\x00")]))
    link = Link(ch, clock)
    link.send(APDU)
    assert link.receive(0.5) == b"\x80\x00\x00"


def test_repeat_after_a_late_ack_is_dropped_by_the_receiver(clock: FakeClock, scripted: Callable) -> None:
    """A receiver that answered after T2 knows the sender repeats, and does not take the frame twice."""

    class Late(LinkFaults):
        def __init__(self) -> None:
            self.first = True

        def answer(self, apdu: bytes) -> Answer:
            if self.first:
                self.first = False
                return Answer(ACK, delay=5.1)
            return Answer()

    ch = scripted()
    ch.push(encode_frame(APDU) + encode_frame(APDU))
    link = Link(ch, clock, faults=Late())
    assert link.receive(10.0) == APDU
    with pytest.raises(ResponseTimeout):
        link.receive(1.0)
    assert link.stats.duplicates_dropped == 1
