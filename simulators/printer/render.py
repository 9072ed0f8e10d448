"""Renders a printed receipt as plain text (one line per printed line) and as a PNG of the paper."""

from __future__ import annotations

import qrcode
from PIL import Image

from hardware.printer.profiles import PrinterProfile
from hardware.printer.raster import raster_font
from simulators.printer.receipt import PrintedImage, PrintedQr, PrintedReceipt, PrintedText
from simulators.printer.virtual_printer import LINE_ROWS

CUT_MARK = "----- CUT -----"
TORN_MARK = "~~~~~ TORN (paper ran out or cover opened) ~~~~~"


def render_text(receipt: PrintedReceipt, profile: PrinterProfile) -> str:
    """Text lines padded/aligned to the profile's columns, with [QR: …] and [IMG w×h] markers and the cut."""
    out: list[str] = []
    for item, line in zip(receipt.items, receipt.text_lines(), strict=True):
        if isinstance(item, PrintedText):
            width = profile.columns // item.scale
            if item.align == "center":
                line = line.center(width).rstrip()
            elif item.align == "right":
                line = line.rjust(width)
        out.append(line)
    out.append(TORN_MARK if receipt.torn else CUT_MARK)
    return "\n".join(out) + "\n"


def _qr_image(data: str, module: int) -> Image.Image:
    qr = qrcode.QRCode(box_size=max(1, module), border=0)
    qr.add_data(data)
    qr.make(fit=True)
    return qr.make_image().get_image().convert("1")


def render_png(receipt: PrintedReceipt, profile: PrinterProfile) -> Image.Image:
    """The paper as an image: profile width, text in DejaVu Sans Mono, raster images 1:1, QR codes redrawn."""
    font = raster_font(profile.width_px, profile.cell_width)
    bands: list[Image.Image] = []
    for item in receipt.items:
        if isinstance(item, PrintedText):
            text = item.text[: profile.columns // item.scale]
            line = font.render_line(text, bold=item.bold, scale=item.scale, align=item.align)
            band = Image.new("1", (profile.width_px, max(line.height, LINE_ROWS * item.scale)), 1)
            band.paste(line, (0, 0))
            bands.append(band)
        elif isinstance(item, PrintedImage):
            band = Image.new("1", (profile.width_px, item.image.height), 1)
            band.paste(item.image, (0, 0))
            bands.append(band)
        elif isinstance(item, PrintedQr):
            qr = _qr_image(item.data, item.module)
            band = Image.new("1", (profile.width_px, qr.height + 8), 1)
            band.paste(qr, (max(0, (profile.width_px - qr.width) // 2), 4))
            bands.append(band)
    height = max(1, sum(b.height for b in bands)) + 24
    page = Image.new("1", (profile.width_px, height), 1)
    y = 8
    for band in bands:
        page.paste(band, (0, y))
        y += band.height
    return page
