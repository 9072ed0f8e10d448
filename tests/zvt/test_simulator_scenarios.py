"""Every simulator scenario and every line fault, end to end over a pty: real framing, link and session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.clock import FakeClock
from hardware.zvt import commands as c
from hardware.zvt.errors import ChannelError, CommandRejected, LinkError
from hardware.zvt.link import Link
from hardware.zvt.session import SessionTimeout, ZvtSession
from hardware.zvt.transport import SerialChannel
from simulators.zvt.faults import LineFault
from simulators.zvt.lines import PtyLine
from simulators.zvt.scenarios import Scenario
from simulators.zvt.terminal import SimulatedTerminal

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[SimulatedTerminal, ZvtSession, list[int]]]:
    clock = FakeClock()
    line = PtyLine(tmp_path / "zvt0")
    sim = SimulatedTerminal(line, clock).start()
    channel = SerialChannel(line.path)
    shown: list[int] = []
    session = ZvtSession(Link(channel, clock), clock, on_intermediate=lambda st: shown.append(st.code))
    yield sim, session, shown
    channel.close()
    sim.stop()
    line.close()


def accept(info: c.StatusInformation) -> bytes:
    """These scenarios keep no journal: they accept every result they are given."""
    return c.ACK_APDU


def _pay(session: ZvtSession) -> c.StatusInformation:
    read = session.run(c.read_card())
    assert read.last_status is not None and read.last_status.approved
    out = session.run(c.authorisation(500000, card_hash=True), accept)
    assert out.completion is not None, out
    info = out.last_status
    assert info is not None
    return info


def test_approved_payment_reports_realistic_fields(rig: tuple) -> None:
    sim, session, shown = rig
    info = _pay(session)
    assert info.approved and info.amount_minor == 500000 and info.currency == 398
    assert info.trace == 10  # BCD 00 00 10: a DLE inside the data
    assert info.pan and info.pan.endswith("1014") and "E" in info.pan
    assert info.card_hash == sim.last_card.card_hash
    assert shown[:1] == [0x0A] and 0x04 in shown
    assert [ch.status for ch in sim.journal.all()] == ["booked"]


@pytest.mark.parametrize(
    ("scenario", "with_status"), [(Scenario.DECLINED, True), (Scenario.DECLINED_NO_STATUS, False)]
)
def test_declined_by_host(rig: tuple, scenario: Scenario, with_status: bool) -> None:
    sim, session, _ = rig
    sim.settings.scenario = scenario
    session.run(c.read_card())
    out = session.run(c.authorisation(500000), accept)
    assert out.abort_notice is not None and out.abort_notice.result_code == sim.settings.decline_code
    assert bool(out.status_infos) is with_status
    assert sim.journal.booked() == []


@pytest.mark.parametrize(
    ("scenario", "code"), [(Scenario.NO_CARD, 0x6C), (Scenario.UNREADABLE, 0x64), (Scenario.EXPIRED, 0x78)]
)
def test_card_problems_end_read_card_with_abort(rig: tuple, scenario: Scenario, code: int) -> None:
    sim, session, _ = rig
    sim.settings.scenario = scenario
    out = session.run(c.read_card(30))
    assert out.abort_notice is not None and out.abort_notice.result_code == code


def test_wrong_pin_then_right_is_approved(rig: tuple) -> None:
    sim, session, shown = rig
    sim.settings.scenario = Scenario.WRONG_PIN_THEN_RIGHT
    assert _pay(session).approved
    assert 0x15 in shown


def test_pin_tries_exceeded_declines(rig: tuple) -> None:
    sim, session, shown = rig
    sim.settings.scenario = Scenario.PIN_TRIES_EXCEEDED
    session.run(c.read_card())
    out = session.run(c.authorisation(500000), accept)
    assert 0x18 in shown
    assert out.abort_notice is not None and out.abort_notice.result_code == sim.settings.pin_fail_code
    assert sim.journal.booked() == []


def test_wrong_currency_is_6f_on_payment_and_registration(rig: tuple) -> None:
    sim, session, _ = rig
    sim.settings.scenario = Scenario.WRONG_CURRENCY
    out = session.run(c.authorisation(500000), accept)
    assert out.abort_notice is not None and out.abort_notice.result_code == 0x6F
    assert out.abort_notice.currency == 398
    with pytest.raises(CommandRejected) as err:
        session.run(c.registration())
    assert err.value.code == 0x1E


def test_busy_terminal_says_9c(rig: tuple) -> None:
    sim, session, _ = rig
    sim.settings.scenario = Scenario.BUSY
    assert session.run(c.status_enquiry()).completion.terminal_status == 0x9C
    with pytest.raises(CommandRejected) as err:
        session.run(c.read_card())
    assert err.value.code == 0x9C


def test_long_host_wait_beyond_t4_is_kept_alive_by_04ff(rig: tuple) -> None:
    sim, session, shown = rig
    sim.settings.scenario = Scenario.LONG_HOST_WAIT
    sim.settings.host_wait_s = 240.0
    start = session.clock.monotonic()
    assert _pay(session).approved
    assert session.clock.monotonic() - start >= 240.0
    assert shown.count(0x04) >= 8


def test_silent_terminal_expires_t4_and_books_nothing(rig: tuple) -> None:
    sim, session, _ = rig
    sim.settings.scenario = Scenario.SILENT
    session.run(c.read_card())
    with pytest.raises(SessionTimeout, match="T4"):
        session.run(c.authorisation(500000), accept)
    assert sim.journal.booked() == []


def test_abort_is_refused_during_a_payment(rig: tuple) -> None:
    sim, session, _shown = rig
    sim.settings.scenario = Scenario.ABORT_REFUSED
    session.on_intermediate = lambda st: session.request_abort() if st.code == 0x04 else None
    session.run(c.read_card())
    out = session.run(c.authorisation(500000), accept)
    assert out.abort_answer is not None and not out.abort_answer.positive
    assert out.completion is not None and sim.journal.booked()


def test_abort_during_read_card_releases(rig: tuple) -> None:
    sim, session, _ = rig
    sim.settings.auto_present = False
    session.on_intermediate = lambda st: session.request_abort() if st.code == 0x0A else None
    out = session.run(c.read_card())
    assert out.abort_answer is not None and out.abort_answer.positive
    assert out.abort_notice is not None and out.abort_notice.result_code == 0x6C


def test_card_presented_and_pin_entered_through_control(rig: tuple) -> None:
    sim, session, _ = rig
    sim.settings.auto_present = False
    sim.settings.auto_pin = False

    def ui(st: c.IntermediateStatus) -> None:
        if st.code == 0x0A:
            sim.present_card("mc_chip")
        elif st.code == 0x01:
            sim.enter_pin("0000" if not sim.journal.all() and 0x15 not in seen else "1234")
        seen.append(st.code)

    seen: list[int] = []
    session.on_intermediate = ui
    info = _pay(session)
    assert info.pan and info.pan.endswith("4771")
    assert 0x15 in seen  # the wrong PIN was reported, the right one approved


@pytest.mark.parametrize(
    "fault",
    [
        LineFault("bad_crc", apdu_prefix=b"\x04\x0f"),
        LineFault("t1_gap", apdu_prefix=b"\x04\x0f"),
        LineFault("one_byte", apdu_prefix=b"\x04\x0f"),
        LineFault("split", count=5),
        LineFault("garbage", count=3),
        LineFault("duplicate", apdu_prefix=b"\x04\x0f"),
        LineFault("crc_dle", apdu_prefix=b"\x04\x0f"),
        LineFault("nak", count=1, apdu_prefix=b"\x06\x01"),
        LineFault("nak", count=2, apdu_prefix=b"\x06\x01"),
        LineFault("no_ack", apdu_prefix=b"\x06\x01"),
        LineFault("late_ack", delay=4.9, apdu_prefix=b"\x06\x01"),
        LineFault("late_ack", delay=5.1, apdu_prefix=b"\x06\x01"),
    ],
    ids=lambda f: f"{f.kind}-{f.count}-{f.delay}",
)
def test_line_fault_is_survived_and_charges_once(rig: tuple, fault: LineFault) -> None:
    sim, session, _ = rig
    sim.faults.add(fault)
    info = _pay(session)
    assert info.approved
    assert fault.kind in sim.faults.applied
    assert len(sim.journal.booked()) == 1
    stats = session.link.stats
    if fault.kind in ("bad_crc", "t1_gap"):
        assert stats.naks_sent >= 1
    if fault.kind in ("nak", "no_ack") or (fault.kind == "late_ack" and fault.delay > 5):
        assert stats.repeats >= 1
    if fault.kind == "late_ack" and fault.delay < 5:
        assert stats.repeats == 0


def test_three_naks_are_a_transmission_error(rig: tuple) -> None:
    sim, session, _ = rig
    sim.faults.add(LineFault("nak", count=3, apdu_prefix=b"\x06\x01"))
    session.run(c.read_card())
    with pytest.raises(LinkError, match="3 sends"):
        session.run(c.authorisation(500000), accept)
    assert sim.journal.booked() == []


def test_port_vanishes_and_comes_back(rig: tuple) -> None:
    sim, session, _ = rig
    sim.line.vanish()
    with pytest.raises(ChannelError):
        session.run(c.status_enquiry())
    sim.line.restore()
    channel = session.link.channel
    channel.reopen()
    session.link = Link(channel, session.clock)
    assert session.run(c.status_enquiry()).completion.terminal_status == 0
