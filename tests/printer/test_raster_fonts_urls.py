"""Raster text reads back exactly; a missing font names the package to install; printer URLs parse or explain."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.printer.fonts import SHIPPED_DIR, FontNotFoundError, find_fonts
from hardware.printer.raster import ALPHABET, RasterTextReader, raster_font
from hardware.printer.transport import PrinterUrlError, parse_printer_url

FONT = raster_font(576, 12)
READER = RasterTextReader(FONT)


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet=ALPHABET + " ", min_size=1, max_size=24).map(str.strip).filter(bool),
    st.booleans(),
    st.sampled_from([1, 2]),
    st.sampled_from(["left", "center", "right"]),
    st.booleans(),
)
def test_raster_lines_read_back_exactly(text: str, bold: bool, scale: int, align: str, trim: bool) -> None:
    text = " ".join(
        text.split()
    )  # the reader cannot see runs of spaces inside a line... but single ones, yes
    image = FONT.render_line(text, bold=bold, scale=scale, align=align, trim=trim)
    read = READER.read_line(image)
    assert read is not None
    assert read.text == READER.canonical(text) and read.scale == scale
    assert image.width % 8 == 0 and image.width <= 576
    if len(text) < 48 // scale and align != "right":
        expected = "left" if align == "left" or len(text) >= 48 // scale - 1 else align
        assert read.align == expected or (align == "center" and read.align == "left")


def test_kazakh_and_georgian_letters_have_their_own_glyphs() -> None:
    for letter in "ӘәҒғҚқҢңӨөҰұ₸№" + "ქართული":
        assert READER.canonical(letter) == letter, letter
    # these Kazakh letters are drawn exactly like Latin ones in DejaVu, so on paper they are the same
    assert [READER.canonical(c) for c in "ҮІіһ"] == ["Y", "I", "i", "h"]


def test_line_too_long_is_refused_with_the_width() -> None:
    with pytest.raises(ValueError, match="does not fit 48 columns"):
        FONT.render_line("x" * 49)


def test_missing_font_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(FontNotFoundError, match="fonts-dejavu-core"):
        find_fonts([tmp_path])


def test_the_shipped_font_is_used_without_any_system_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATROLKIT_FONT_DIR", raising=False)
    found = find_fonts()
    assert found.regular.parent == SHIPPED_DIR and found.bold.parent == SHIPPED_DIR
    assert (SHIPPED_DIR / "LICENSE").is_file()


def test_font_is_found_in_a_given_folder(tmp_path: Path) -> None:
    real = find_fonts()
    for f in (real.regular, real.bold):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    assert find_fonts([tmp_path / "nothing", tmp_path]).regular == tmp_path / real.regular.name


@pytest.mark.parametrize(
    ("url", "kind", "target", "extra"),
    [
        ("tcp://10.0.0.5:9100", "tcp", "10.0.0.5", {"port": 9100}),
        ("socket://printer.local", "tcp", "printer.local", {"port": 9100}),
        ("serial:///dev/ttyUSB0?baudrate=115200", "serial", "/dev/ttyUSB0", {"baudrate": 115200}),
        ("/dev/rfcomm0", "serial", "/dev/rfcomm0", {"baudrate": 9600}),
        ("usb://04b8:0e15", "usb", "04b8:0e15", {"usb_ids": (0x04B8, 0x0E15)}),
        ("file:///dev/usb/lp0", "file", "/dev/usb/lp0", {}),
    ],
)
def test_printer_urls_parse(url: str, kind: str, target: str, extra: dict[str, object]) -> None:
    ep = parse_printer_url(url)
    assert (ep.kind, ep.target) == (kind, target)
    for key, value in extra.items():
        assert getattr(ep, key) == value


@pytest.mark.parametrize(
    "url", ["http://x", "tcp://", "serial://", "usb://zz:yy", "serial:///dev/x?baudrate=fast"]
)
def test_bad_printer_urls_explain_the_accepted_forms(url: str) -> None:
    with pytest.raises(PrinterUrlError, match="tcp://host:9100"):
        parse_printer_url(url)
