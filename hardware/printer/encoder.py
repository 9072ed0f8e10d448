"""Turns a Document into the ESC/POS bytes of one job through python-escpos, per the printer's profile."""

from __future__ import annotations

from escpos.printer import Dummy

import hardware.printer.codepage as cp
from core.receipt_document import Align, Document, Feed, QrCode, Text, wrap
from hardware.printer.profiles import PrinterProfile, TextMode
from hardware.printer.raster import RasterFont, raster_font
from hardware.printer.status import confirmation_request

CUT = b"\x1dV\x00"  # GS V 0: full cut
RASTER_FRAGMENT_ROWS = 250  # GS v 0 fragment height; not a multiple of 48 (python-escpos #424)


class JobEncoder:
    """Encodes documents for one profile. Lines the printer's code page cannot show are drawn as raster."""

    def __init__(self, profile: PrinterProfile, font: RasterFont | None = None) -> None:
        self.profile = profile
        self._font = font
        self.raster_lines = 0
        self.text_lines = 0

    @property
    def font(self) -> RasterFont:
        if self._font is None:
            self._font = raster_font(self.profile.width_px, self.profile.cell_width)
        return self._font

    def _page(self) -> tuple[str, str]:
        """(python-escpos encoding name, Python codec) of the text mode."""
        if self.profile.text_mode is TextMode.KZ1048:
            return "RK1048", "kz1048"
        if self.profile.text_mode is TextMode.CP866_RUSSIFIED:
            return "CP866", "cp866"
        return "CP437", "ascii"

    def as_text(self, text: str) -> str | None:
        """The text as the printer's code page shows it, or None when it must go as raster."""
        mode = self.profile.text_mode
        if mode is TextMode.RASTER:
            return text if text.isascii() else None
        shown = cp.for_text_mode(cp.russify(text) if mode is TextMode.CP866_RUSSIFIED else text)
        return shown if cp.encodable(shown, self._page()[1]) else None

    def encode(self, doc: Document, marker: bytes | None = None) -> bytes:
        """The whole job: ESC @, ESC t, the blocks, a cut and (when given) the GS ( H marker."""
        p = Dummy(profile=self.profile.escpos_profile)
        encoding, _ = self._page()
        p.hw("INIT")
        p.magic.encoding = None  # ESC @ reset the printer's code table; make python-escpos resend ESC t
        p.charcode(encoding)
        style: tuple[str, bool, bool] | None = None
        for block in doc.blocks:
            if isinstance(block, Text):
                style = self._text(p, block, style)
            elif isinstance(block, QrCode):
                style = None
                self._qr(p, block)
            elif isinstance(block, Feed):
                p.ln(block.lines)
        p.set(align="left", bold=False, double_width=False, double_height=False)
        # python-escpos' cut() sends nothing for profiles without a cutter (58 mm); printers without one ignore
        # GS V, and the job boundary matters to the simulator, so the feed and the cut are sent explicitly.
        p.print_and_feed(6)
        p._raw(CUT)
        if marker is not None:
            p._raw(confirmation_request(marker))
        return p.output

    def _text(self, p: Dummy, block: Text, style: tuple[str, bool, bool] | None) -> tuple[str, bool, bool]:
        scale = 2 if block.large else 1
        width = self.profile.columns // scale
        shown = self.as_text(block.text)
        if shown is not None:
            want = (block.align.value, block.bold, block.large)
            if want != style:
                p.set(
                    align=block.align.value,
                    bold=block.bold,
                    double_width=block.large,
                    double_height=block.large,
                    normal_textsize=not block.large,
                )
            for line in wrap(shown, width):
                p.text(line + "\n")
                self.text_lines += 1
            return want
        if style is None or style[0] != Align.LEFT.value:
            p.set(align="left")
        for line in wrap(block.text, width):
            img = self.font.render_line(
                line, bold=block.bold, scale=scale, align=block.align.value, trim=True
            )
            p.image(img, impl="bitImageRaster", fragment_height=RASTER_FRAGMENT_ROWS)
            self.raster_lines += 1
        return (Align.LEFT.value, False, False) if style is None else (Align.LEFT.value, style[1], style[2])

    def _qr(self, p: Dummy, block: QrCode) -> None:
        p.set(align="center", bold=False, normal_textsize=True)
        if self.profile.native_qr:
            p.qr(block.data, size=self.profile.qr_module, native=True)
            p.text("\n")
        else:
            p.qr(block.data, size=self.profile.qr_module, native=False, center=True)
        p.set(align="left")
