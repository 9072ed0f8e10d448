"""Raster text: draw lines in DejaVu Sans Mono on a fixed character grid, and read such lines back.

Every character is drawn alone into its own cell (clipped), so a line's bitmap is the concatenation of cell
bitmaps. That keeps raster text byte-for-byte reproducible and lets the printer simulator read it back exactly
(``RasterTextReader``), which is how tests compare raster receipts field by field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from hardware.printer.fonts import FontFiles, find_fonts

WHITE = 1
BLACK = 0

# Everything a receipt may hold: ASCII, Russian, Kazakh, №, ₸ and Georgian Mkhedruli.
ALPHABET = (
    "".join(chr(c) for c in range(0x21, 0x7F))
    + "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    + "ӘәҒғҚқҢңӨөҰұҮүҺһІі"
    + "№₸«»—–·°"
    + "".join(chr(c) for c in range(0x10D0, 0x10FB))
)


@dataclass(frozen=True, slots=True)
class ReadLine:
    """A raster line read back: its text (homoglyphs in canonical form), bold face and scale (1 or 2)."""

    text: str
    bold: bool
    scale: int
    align: str = "left"


class RasterFont:
    """DejaVu Sans Mono sized so one glyph fits a ``cell_width``-dot cell; lines are ``width_px`` dots wide."""

    def __init__(self, width_px: int, cell_width: int, files: FontFiles | None = None) -> None:
        if cell_width < 6 or width_px < cell_width:
            raise ValueError("cell_width must be at least 6 dots and no wider than the line")
        self.files = files or find_fonts()
        self.width_px = width_px
        self.cell_width = cell_width
        size = 8
        while ImageFont.truetype(str(self.files.regular), size + 1).getlength("M") <= cell_width:
            size += 1
        self.size = size
        self._fonts = {
            False: ImageFont.truetype(str(self.files.regular), size),
            True: ImageFont.truetype(str(self.files.bold), size),
        }
        ascent, descent = self._fonts[False].getmetrics()
        height = ascent + descent + 2
        if height % 48 == 0 or (2 * height) % 48 == 0:
            height += (
                1  # POS-5890K garbles GS v 0 images whose height is a multiple of 48 (python-escpos #424)
            )
        self.cell_height = height
        self._ascent = ascent
        self._glyphs: dict[tuple[str, bool], Image.Image] = {}

    @property
    def columns(self) -> int:
        return self.width_px // self.cell_width

    def glyph(self, char: str, bold: bool = False) -> Image.Image:
        """One character in its cell: mode "1", black ink on white, clipped to the cell."""
        key = (char, bold)
        cached = self._glyphs.get(key)
        if cached is None:
            cell = Image.new("L", (self.cell_width, self.cell_height), 255)
            if not char.isspace():
                ImageDraw.Draw(cell).text((0, 1), char, font=self._fonts[bold], fill=0)
            cached = cell.point(lambda v: 255 if v >= 128 else 0).convert("1")
            self._glyphs[key] = cached
        return cached

    def render_line(
        self, text: str, bold: bool = False, scale: int = 1, align: str = "left", trim: bool = False
    ) -> Image.Image:
        """A line image (mode "1"), full width or (``trim``) cut after the text; ``text`` must fit
        ``columns // scale`` characters."""
        if scale not in (1, 2):
            raise ValueError("scale must be 1 or 2")
        fit = self.columns // scale
        if len(text) > fit:
            raise ValueError(f"line of {len(text)} characters does not fit {fit} columns: {text!r}")
        pad = fit - len(text)
        start = {"left": 0, "center": pad // 2, "right": pad}[align]
        line = Image.new("1", (self.columns * self.cell_width, self.cell_height), WHITE)
        for i, char in enumerate(text):
            line.paste(self.glyph(char, bold), ((start + i) * self.cell_width, 0))
        if scale == 2:
            line = line.resize((line.width * 2, line.height * 2), Image.Resampling.NEAREST)
        width = self.width_px
        if trim:
            # blank cells after the text cost bytes on the wire and print nothing: cut them off, keeping the
            # width a whole number of bytes and of cells
            step = math.lcm(8, self.cell_width * scale)
            used = (start + len(text)) * self.cell_width * scale
            width = min(self.width_px, max(step, -(-used // step) * step))
        out = Image.new("1", (width, line.height), WHITE)
        out.paste(line.crop((0, 0, min(line.width, width), line.height)), (0, 0))
        return out


class RasterTextReader:
    """Reads lines drawn by ``RasterFont`` back into text (exact cell matching, no guessing)."""

    def __init__(self, font: RasterFont, alphabet: str = ALPHABET) -> None:
        self.font = font
        self._table: dict[bytes, tuple[str, bool | None]] = {}
        self._canonical: dict[str, str] = {}
        blank = font.glyph(" ").tobytes()
        self._blank = blank
        for bold in (False, True):
            for char in alphabet:
                bits = font.glyph(char, bold).tobytes()
                if bits == blank:
                    continue
                first = self._table.setdefault(bits, (char, bold))
                if first[1] is not None and first[1] != bold:
                    self._table[bits] = (first[0], None)  # the same in both faces: says nothing about bold
                self._canonical.setdefault(char, first[0])

    def canonical(self, text: str) -> str:
        """``text`` with each character replaced by the first character that has the same glyph (A/А, I/І…)."""
        return "".join(self._canonical.get(c, c) for c in text)

    def read_line(self, image: Image.Image) -> ReadLine | None:
        """The text of a line image, or None when it is not a raster text line of this font."""
        img = image.convert("1")
        for scale in (1, 2):
            if img.height != self.font.cell_height * scale:
                continue
            if scale == 2:
                img = img.resize((img.width // 2, img.height // 2), Image.Resampling.NEAREST)
            return self._read_cells(img, scale)
        return None

    def _read_cells(self, img: Image.Image, scale: int) -> ReadLine | None:
        cw, ch = self.font.cell_width, self.font.cell_height
        chars: list[str] = []
        bold_seen: set[bool] = set()
        for i in range(img.width // cw):
            bits = img.crop((i * cw, 0, (i + 1) * cw, ch)).tobytes()
            if bits == self._blank:
                chars.append(" ")
                continue
            found = self._table.get(bits)
            if found is None:
                return None
            chars.append(found[0])
            if found[1] is not None:
                bold_seen.add(found[1])
        if len(bold_seen) > 1:
            return None
        line = "".join(chars)
        text = line.strip()
        lead = len(line) - len(line.lstrip())
        trail = len(line) - len(line.rstrip())
        fit = self.font.columns // scale
        trail -= len(line) - fit  # cells beyond the line's own width are not alignment
        align = "left" if lead == 0 or not text else ("right" if trail <= 0 else "center")
        return ReadLine(text, bold=bold_seen == {True}, scale=scale, align=align)


@lru_cache(maxsize=8)
def raster_font(width_px: int, cell_width: int) -> RasterFont:
    """A shared RasterFont per geometry (building the glyph cache is the slow part)."""
    return RasterFont(width_px, cell_width)
