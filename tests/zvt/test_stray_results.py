"""A terminal result nobody asked for (a stray 04 0F from an interrupted transaction) is never answered
``80 00 00`` unless it was saved first; the other messages that move no money are acknowledged wherever
they come. Scripted byte by byte, then against the terminal simulator's ``stray_results`` profile over a pty:
while the ECR waits for its next command's acknowledgement, and after a reconnect. Also End-of-Day totals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import FakeClock
from hardware.zvt import commands as c
from hardware.zvt.apdu import decode_apdu
from hardware.zvt.errors import ApduError
from hardware.zvt.framing import ACK, Frame, FrameDecoder, encode_frame
from hardware.zvt.link import Link
from hardware.zvt.session import ZvtSession
from hardware.zvt.transport import SerialChannel
from simulators.zvt.lines import PtyLine
from simulators.zvt.scenarios import Profile
from simulators.zvt.terminal import SimulatedTerminal

pytestmark = pytest.mark.timeout(60)

APPROVED = c.status_information_apdu(
    [(0x27, 0x00), (0x04, 500000), (0x49, 398), (0x0B, 41), (0x87, 41), (0x0C, "101500"), (0x0D, "0302")]
)


class Crash(Exception):
    """The ECR dies between receiving a result and answering it."""


def accept(info: c.StatusInformation) -> bytes:
    return c.ACK_APDU


def _ecr_frames(written: list[bytes]) -> list[bytes]:
    """The APDUs the ECR put on the wire, in order (its single ACK bytes left out)."""
    decoder = FrameDecoder()
    return [e.apdu for chunk in written for e in decoder.feed(chunk) if isinstance(e, Frame)]


def _scripted_terminal(steps: list[list[bytes]]) -> Callable[[bytes], bytes]:
    """Answer each frame the ECR sends with ACK and the next step's frames (the terminal's messages)."""

    def on_write(data: bytes) -> bytes:
        if data[:2] != b"\x10\x02":
            return b""
        frames = steps.pop(0) if steps else []
        return bytes((ACK,)) + b"".join(encode_frame(f) for f in frames)

    return on_write


def test_a_transaction_command_without_a_saving_handler_is_refused_before_anything_is_sent(
    clock: FakeClock, scripted: Callable
) -> None:
    ch = scripted(_scripted_terminal([]))
    session = ZvtSession(Link(ch, clock), clock)
    for command in (c.authorisation(500000), c.repeat_receipt(), c.end_of_day(), c.reversal(12)):
        with pytest.raises(ValueError, match="saves it before it is acknowledged"):
            session.run(command)
    assert ch.written == []


@pytest.mark.parametrize("saved", [False, True], ids=["no-saver", "saver"])
def test_stray_results_are_answered_80_00_only_after_they_were_saved(
    clock: FakeClock, scripted: Callable, saved: bool
) -> None:
    """05 01 sent; the terminal sends an approved 04 0F before its 80 00, a display, then another stray
    result after the 80 00: only a saver's yes becomes 80 00 00; 04 FF and the Completion are acknowledged."""
    kept: list[c.StatusInformation] = []
    steps = [
        [APPROVED],  # answer to 05 01: a stray result while the ECR waits for 80 00
        [c.intermediate_apdu(0x0A)],  # answer to the ECR's reply: a stray display
        [c.ACK_APDU, APPROVED[:-1] + b"\x42"],  # the 80 00 at last, then another (different) stray result
        [c.status_completion_apdu("SIM", 0x00)],
        [],
    ]
    ch = scripted(_scripted_terminal(steps))

    def saver(info: c.StatusInformation) -> bytes:
        kept.append(info)
        return c.ACK_APDU

    session = ZvtSession(Link(ch, clock), clock, on_stray_result=saver if saved else None)
    out = session.run(c.status_enquiry())
    assert out.completion is not None and out.completion.terminal_status == 0
    sent = _ecr_frames(ch.written)
    answer = c.ACK_APDU if saved else bytes.fromhex("846600")
    assert sent == [c.status_enquiry().encode(), answer, c.ACK_APDU, answer, c.ACK_APDU]
    assert [s.accepted for s in session.stray_results] == [saved, saved]
    assert [k.trace for k in kept] == ([41, 41] if saved else [])


def test_a_saver_that_fails_leaves_the_stray_result_unanswered(clock: FakeClock, scripted: Callable) -> None:
    ch = scripted(_scripted_terminal([[APPROVED]]))

    def broken(info: c.StatusInformation) -> bytes:
        raise Crash("database is gone")

    session = ZvtSession(Link(ch, clock), clock, on_stray_result=broken)
    with pytest.raises(Crash):
        session.run(c.status_enquiry())
    assert _ecr_frames(ch.written) == [c.status_enquiry().encode()]  # no 80 00 00 went out


def test_a_booking_that_arrives_during_read_card_is_stray_not_card_data(
    clock: FakeClock, scripted: Callable
) -> None:
    card = c.status_information_apdu([(0x27, 0x00), (0x22, "4EEEEEEEEEEE1014")])
    ch = scripted(_scripted_terminal([[c.ACK_APDU, APPROVED], [card], []]))
    out = ZvtSession(Link(ch, clock), clock).run(c.read_card())
    assert out.last_status is not None and out.last_status.pan == "4EEEEEEEEEEE1014"
    assert _ecr_frames(ch.written)[1:] == [bytes.fromhex("846600"), c.ACK_APDU]


# ------------------------------------------------------------------ against the simulator, over a pty
@pytest.fixture
def stray_rig(tmp_path: Path) -> Iterator[tuple[SimulatedTerminal, ZvtSession]]:
    clock = FakeClock()
    line = PtyLine(tmp_path / "zvt0")
    sim = SimulatedTerminal(line, clock)
    sim.settings.apply_profile(Profile.STRAY_RESULTS)
    sim.start()
    channel = SerialChannel(line.path)
    yield sim, ZvtSession(Link(channel, clock), clock)
    channel.close()
    sim.stop()
    line.close()


def _lose_the_result(sim: SimulatedTerminal, session: ZvtSession, unplug: bool) -> None:
    """Read Card, Authorisation, then the ECR dies holding the approved 04 0F (and the line with it)."""
    session.run(c.read_card())

    def die(info: c.StatusInformation) -> bytes:
        if unplug:
            sim.line.vanish()
        raise Crash("killed before the result was saved")

    with pytest.raises(Crash):
        session.run(c.authorisation(500000, card_hash=True), die)
    if unplug:
        sim.line.restore()
        channel = session.link.channel
        assert isinstance(channel, SerialChannel)
        channel.reopen()
        session.link = Link(channel, session.clock)


@pytest.mark.parametrize("unplug", [False, True], ids=["waiting-for-ack", "after-reconnect"])
@pytest.mark.parametrize("saved", [False, True], ids=["no-saver", "saver"])
def test_simulated_stray_approval_is_booked_only_when_saved(
    stray_rig: tuple[SimulatedTerminal, ZvtSession], unplug: bool, saved: bool
) -> None:
    sim, session = stray_rig
    _lose_the_result(sim, session, unplug)
    kept: list[c.StatusInformation] = []

    def saver(info: c.StatusInformation) -> bytes:
        kept.append(info)
        return c.ACK_APDU

    session.on_stray_result = saver if saved else None
    out = session.run(c.status_enquiry())  # the next command: the terminal sends its kept result first
    assert out.completion is not None and out.completion.terminal_status == 0
    # what the terminal heard, and what it did with its kept approval
    assert sim.stray_answers == (["800000"] if saved else ["846600"])
    statuses = [ch.status for ch in sim.journal.all()]
    assert statuses == (["booked"] if saved else ["reversed_by_ecr"])
    assert len(session.stray_results) == 1 and session.stray_results[0].during.startswith("status_enquiry")
    if saved:
        assert [k.trace for k in kept] == [sim.journal.all()[0].trace]


def test_full_profile_reverses_an_unanswered_result_at_once(
    stray_rig: tuple[SimulatedTerminal, ZvtSession],
) -> None:
    sim, session = stray_rig
    sim.settings.apply_profile(Profile.FULL)
    sim.settings.reply_timeout_s = 0.3
    _lose_the_result(sim, session, unplug=True)
    out = session.run(c.status_enquiry())
    assert out.completion is not None and session.stray_results == []
    assert [ch.status for ch in sim.journal.all()] == ["auto_reversed"]


def test_terminal_without_repeat_receipt_answers_84_83(
    stray_rig: tuple[SimulatedTerminal, ZvtSession],
) -> None:
    from hardware.zvt.errors import CommandRejected

    sim, session = stray_rig
    sim.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)
    with pytest.raises(CommandRejected) as err:
        session.run(c.repeat_receipt(), accept)
    assert err.value.code == 0x83


def test_end_of_day_reports_the_batch_total_receipt_range_and_counts_then_closes_it(
    stray_rig: tuple[SimulatedTerminal, ZvtSession],
) -> None:
    sim, session = stray_rig
    sim.settings.apply_profile(Profile.FULL)
    for _ in range(2):
        session.run(c.read_card())
        session.run(c.authorisation(500000, card_hash=True), accept)
    got: list[c.EndOfDayTotals] = []

    def keep(info: c.StatusInformation) -> bytes:
        got.append(c.parse_end_of_day(info))
        return c.ACK_APDU

    session.run(c.end_of_day(), keep)
    traces = [ch.receipt_no for ch in sim.journal.all()]
    assert got[0].total_minor == 1_000_000 and got[0].count == 2
    assert (got[0].receipt_from, got[0].receipt_to) == (min(traces), max(traces))
    assert [g.count for g in got[0].groups if g.group == "visa"] == [2]
    session.run(c.end_of_day(), keep)  # the batch is closed: the next one is empty
    assert got[1].total_minor == 0 and got[1].count == 0


# ------------------------------------------------------------------ End-of-Day totals decoder
def test_end_of_day_totals_round_trip() -> None:
    body = c.individual_totals(7, 19, {"visa": (3, 1500), "eurocard": (1, 250), "others": (2, 99)})
    info = c.parse_status_information(
        decode_apdu(c.status_information_apdu([(0x27, 0), (0x04, 1849), (0x0B, 20), (0x60, body)]))
    )
    totals = c.parse_end_of_day(info)
    assert (totals.total_minor, totals.receipt_from, totals.receipt_to, totals.count) == (1849, 7, 19, 6)
    assert {g.group: (g.count, g.amount_minor) for g in totals.groups if g.count} == {
        "visa": (3, 1500),
        "eurocard": (1, 250),
        "others": (2, 99),
    }


@given(st.binary(max_size=80))
def test_end_of_day_decoder_never_fails_but_with_a_clear_error(body: bytes) -> None:
    info = c.parse_status_information(decode_apdu(c.status_information_apdu([(0x04, 10), (0x60, body)])))
    try:
        totals = c.parse_end_of_day(info)
    except ApduError as exc:
        assert "BMP 60" in str(exc) or "BCD" in str(exc)
    else:
        assert totals.count is not None and totals.total_minor == 10


class _Scripted:
    """The scripted peer of ``conftest.ScriptedChannel``, made per example (hypothesis runs many)."""

    def __init__(self, clock: FakeClock, on_write: Callable[[bytes], bytes]) -> None:
        self.clock, self.on_write = clock, on_write
        self.written: list[bytes] = []
        self.inbound = bytearray()

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.inbound += self.on_write(bytes(data))

    def read(self, timeout: float) -> bytes:
        if not self.inbound:
            self.clock.advance(timeout if timeout > 0 else 0.001)
            return b""
        data = bytes(self.inbound)
        self.inbound.clear()
        return data


@given(st.binary(max_size=60))
def test_no_stray_04_0f_however_malformed_is_acknowledged_without_a_saver(data: bytes) -> None:
    """Random and mutated 04 0F bodies arriving while a command waits for its 80 00: never answered 80 00 00
    (84 66 when readable, 84 9A when not), and the command still completes."""
    clock = FakeClock()
    stray = bytes((0x04, 0x0F, len(data))) + data
    steps = [[stray], [c.ACK_APDU, c.status_completion_apdu("SIM", 0)], []]
    ch = _Scripted(clock, _scripted_terminal(steps))
    out = ZvtSession(Link(ch, clock), clock).run(c.status_enquiry())
    assert out.completion is not None
    answer = _ecr_frames(ch.written)[1]
    assert answer != c.ACK_APDU and answer[0] == 0x84 and answer[1] in (0x66, 0x9A)
