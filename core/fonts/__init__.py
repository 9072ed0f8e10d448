"""DejaVu Sans Mono, shipped with patrolkit (see ``README.md`` and ``LICENSE`` here): the device's raster
receipts (``hardware.printer.fonts``) and the server's receipt images (``server.evidence.receipt_image``)
draw with the same glyphs on every machine. Data only."""

from __future__ import annotations

from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent
REGULAR = FONT_DIR / "DejaVuSansMono.ttf"
BOLD = FONT_DIR / "DejaVuSansMono-Bold.ttf"
