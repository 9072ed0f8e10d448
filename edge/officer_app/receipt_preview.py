"""Both receipt copies on the screen, drawn from the same layout as the paper: the receipt service's
``Document`` for the copy, each line wrapped to the printer profile's columns (half as many for large text)
and shown as the printer's code page shows it, exactly as ``hardware.printer.encoder`` lays it out; the QR
as an image of the same link."""

from __future__ import annotations

import io
from dataclasses import dataclass

import qrcode
from qrcode.image.svg import SvgPathImage

from core.receipt_document import Document, Feed, QrCode, Text, wrap
from hardware.printer.encoder import JobEncoder
from hardware.printer.profiles import PrinterProfile


@dataclass(frozen=True)
class PreviewLine:
    kind: str  # text | qr | feed
    text: str = ""
    align: str = "left"
    bold: bool = False
    large: bool = False


@dataclass(frozen=True)
class Preview:
    columns: int
    lines: tuple[PreviewLine, ...]
    qr_data: str


def preview(doc: Document, profile: PrinterProfile) -> Preview:
    encoder = JobEncoder(profile)
    lines: list[PreviewLine] = []
    qr_data = ""
    for block in doc.blocks:
        if isinstance(block, Text):
            width = profile.columns // (2 if block.large else 1)
            shown = encoder.as_text(block.text) or block.text  # a raster line shows the text itself
            for line in wrap(shown, width):
                lines.append(PreviewLine("text", line, block.align.value, block.bold, block.large))
        elif isinstance(block, QrCode):
            qr_data = block.data
            lines.append(PreviewLine("qr", block.data))
        elif isinstance(block, Feed):
            lines += [PreviewLine("feed")] * block.lines
    return Preview(profile.columns, tuple(lines), qr_data)


def qr_svg(data: str) -> bytes:
    """The QR of ``data`` as an SVG image (the printer prints the same content)."""
    image = qrcode.make(data, image_factory=SvgPathImage, box_size=10, border=2)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()
