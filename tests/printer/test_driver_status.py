"""DLE EOT status and GS ( H confirmation between the driver and the virtual printer, faults included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.clock import FakeClock
from core.receipt_document import Document, Text
from hardware.printer.driver import EscposPrinter
from hardware.printer.profiles import profile_by_name
from hardware.printer.raster import RasterTextReader, raster_font
from hardware.printer.status import PaperState, ReplyStream, is_status_byte, status_from_bytes
from simulators.printer.server import TcpPrinterServer
from simulators.printer.virtual_printer import VirtualPrinter

DOC = Document((Text("Тест / Сынақ"), Text("Ққ Әә Іі")))


@pytest.mark.parametrize(
    ("p1", "p2", "p4", "paper", "online", "cover"),
    [
        (0x12, 0x12, 0x12, PaperState.OK, True, False),
        (0x12, 0x12, 0x1E, PaperState.NEAR_END, True, False),
        (0x1A, 0x32, 0x72, PaperState.END, False, False),
        (0x1A, 0x16, 0x12, PaperState.OK, False, True),
        (None, None, None, PaperState.UNKNOWN, None, None),
    ],
)
def test_status_bytes_decode_per_the_manual(p1, p2, p4, paper, online, cover) -> None:  # type: ignore[no-untyped-def]
    st = status_from_bytes(p1, p2, p4)
    assert (st.paper, st.online, st.cover_open) == (paper, online, cover)


def test_no_reply_is_unknown_never_no_paper() -> None:
    st = status_from_bytes(None, None, None)
    assert st.paper is PaperState.UNKNOWN and st.blocking_reason() is None
    assert st.warning() == "printer status unknown (no reply)"


def test_reply_stream_separates_status_from_confirmations_split_anywhere() -> None:
    data = b"\x12\x37\x22AB12\x00\x1e\x99"
    for cut in range(len(data) + 1):
        rs = ReplyStream()
        rs.feed(data[:cut])
        rs.feed(data[cut:])
        assert rs.status_bytes == [0x12, 0x1E] and rs.confirmed == {b"AB12"} and rs.junk == 1
    assert not is_status_byte(0x37)


@pytest.fixture
def rig(fake_clock: FakeClock) -> Iterator[tuple[VirtualPrinter, TcpPrinterServer]]:
    sim = VirtualPrinter(profile_by_name("kz1048-80mm"), clock=fake_clock, strict=True)
    server = TcpPrinterServer(sim, port=0).start()
    yield sim, server
    server.stop()


def _driver(server: TcpPrinterServer, clock: FakeClock, name: str = "kz1048-80mm") -> EscposPrinter:
    return EscposPrinter(
        server.url, profile_by_name(name), clock, read_timeout=0.2, confirm_timeout=3, settle_seconds=1
    )


def test_printed_job_is_confirmed_by_gs_paren_h(rig, fake_clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    sim, server = rig
    with _driver(server, fake_clock) as printer:
        outcome = printer.print_document(DOC)
    assert outcome.confirmed is True and outcome.reason == "GS ( H confirmation"
    assert sim.receipts[0].text_lines()[:2] == ["Тест / Сынақ", "Ққ Әә Іі"]


def test_missing_confirmation_fails_after_the_timeout_on_the_injected_clock(
    rig: tuple[VirtualPrinter, TcpPrinterServer], fake_clock: FakeClock
) -> None:
    sim, server = rig
    sim.configure(no_confirmation=True)
    start = fake_clock.monotonic()
    with _driver(server, fake_clock) as printer:
        outcome = printer.print_document(DOC)
    assert outcome.confirmed is False and outcome.reason.startswith("no print confirmation within 3 s")
    assert fake_clock.monotonic() - start >= 3


def test_paper_running_out_mid_job_fails_it_and_tears_the_receipt(rig, fake_clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    sim, server = rig
    sim.load_paper(40)  # one line fits, the second does not
    with _driver(server, fake_clock) as printer:
        outcome = printer.print_document(DOC)
        status = printer.status()
    assert outcome.confirmed is False and outcome.reason == "paper end"
    assert status.paper is PaperState.END and status.online is False
    assert sim.receipts[0].torn and sim.receipts[0].text_lines() == ["Тест / Сынақ"]


def test_profile_without_gs_paren_h_is_confirmed_by_a_clean_status(fake_clock: FakeClock) -> None:
    sim = VirtualPrinter(profile_by_name("raster-58mm"), clock=fake_clock)
    server = TcpPrinterServer(sim, port=0).start()
    try:
        with _driver(server, fake_clock, "raster-58mm") as printer:
            outcome = printer.print_document(DOC)
    finally:
        server.stop()
    assert outcome.confirmed is True and outcome.reason == "clean status after the job"
    reader = RasterTextReader(raster_font(384, 12))
    printed = [line for line in sim.receipts[0].text_lines() if line]
    assert printed[:2] == [reader.canonical("Тест / Сынақ"), reader.canonical("Ққ Әә Іі")]
    assert len(sim.receipts) == 1 and not sim.receipts[0].torn


def test_link_lost_before_the_job_is_a_failure_not_a_crash(fake_clock: FakeClock) -> None:
    sim = VirtualPrinter(profile_by_name("kz1048-80mm"), clock=fake_clock)
    server = TcpPrinterServer(sim, port=0).start()
    printer = _driver(server, fake_clock)
    assert printer.status().online is True
    server.stop()
    outcome = printer.print_document(DOC)
    assert outcome.confirmed is False and (
        outcome.reason.startswith("link error") or outcome.reason == "offline"
    )
    printer.close()
