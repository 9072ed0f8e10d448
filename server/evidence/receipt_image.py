"""A receipt ``Document`` (``core.receipt_layout.render_copy``, the device's own layout) drawn as a PNG the
way an 80 mm printer prints it: 576 dots, 48 columns of DejaVu Sans Mono (``core.fonts``), lines wrapped as
the printer wraps them, bold and double-size lines, centred text, the QR code, feeds. Used by the evidence
export to show both receipts from the synced records."""

from __future__ import annotations

import io
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont

from core.fonts import BOLD, REGULAR
from core.receipt_document import Align, Document, Feed, QrCode, Text, wrap

WIDTH_PX = 576
COLUMNS = 48
MARGIN_PX = 16
QR_MODULE = 6


@lru_cache(maxsize=4)
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(BOLD if bold else REGULAR), size)


def _font_size(cell: int) -> int:
    size = 8
    while _font(False, size + 1).getlength("M") <= cell:
        size += 1
    return size


def render_png(doc: Document) -> bytes:
    """The PNG bytes of ``doc`` (grey scale, white paper, black ink)."""
    cell = WIDTH_PX // COLUMNS
    size = _font_size(cell)
    line_h = int(size * 1.35)
    rows: list[tuple[str, Text | QrCode | Feed, str]] = []
    for block in doc.blocks:
        if isinstance(block, Text):
            columns = COLUMNS // 2 if block.large else COLUMNS
            rows.extend(("text", block, line) for line in wrap(block.text, columns))
        else:
            rows.append(("other", block, ""))
    qr_images: dict[int, Image.Image] = {}
    height = MARGIN_PX * 2
    for i, (kind, block, _) in enumerate(rows):
        if kind == "text":
            assert isinstance(block, Text)
            height += line_h * (2 if block.large else 1)
        elif isinstance(block, QrCode):
            qr = qrcode.QRCode(border=2, box_size=QR_MODULE, error_correction=qrcode.constants.ERROR_CORRECT_M)
            qr.add_data(block.data.encode("utf-8"))
            qr.make(fit=True)
            image = qr.make_image(fill_color="black", back_color="white").get_image().convert("L")
            qr_images[i] = image
            height += image.height
        elif isinstance(block, Feed):
            height += line_h * block.lines
    paper = Image.new("L", (WIDTH_PX + 2 * MARGIN_PX, height), 255)
    draw = ImageDraw.Draw(paper)
    y = MARGIN_PX
    for i, (kind, block, line) in enumerate(rows):
        if kind == "text":
            assert isinstance(block, Text)
            scale = 2 if block.large else 1
            font = _font(block.bold, size * scale)
            width = font.getlength(line)
            if block.align is Align.CENTER:
                x = MARGIN_PX + (WIDTH_PX - width) / 2
            elif block.align is Align.RIGHT:
                x = MARGIN_PX + WIDTH_PX - width
            else:
                x = MARGIN_PX
            draw.text((x, y), line, font=font, fill=0)
            y += line_h * scale
        elif i in qr_images:
            image = qr_images[i]
            paper.paste(image, (MARGIN_PX + (WIDTH_PX - image.width) // 2, y))
            y += image.height
        elif isinstance(block, Feed):
            y += line_h * block.lines
    out = io.BytesIO()
    paper.save(out, format="PNG", optimize=False)
    return out.getvalue()
