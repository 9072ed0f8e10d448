"""The ESC/POS command table: every command the simulator knows, as a byte prefix and how its parameters end.

Data instead of branches (like escpos-tools' Printout.php tree): the parser walks this table; adding a command is one
line. Anything starting with ESC, GS, DLE or FS that is not here is reported as unknown, never dropped silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Params(enum.Enum):
    FIXED = "fixed"  # ``count`` parameter bytes
    LEN16 = "len16"  # pL pH, then pL + 256 pH bytes (GS ( k, GS ( H, GS ( L ...)
    RASTER = "raster"  # GS v 0: m xL xH yL yH, then (xL + 256 xH) * (yL + 256 yH) bytes
    COLUMN = "column"  # ESC *: m nL nH, then (nL + 256 nH) * (1 or 3) bytes
    CUT = "cut"  # GS V m [n when m is 65/66]
    BARCODE = "barcode"  # GS k m: NUL-terminated (m <= 6) or n + data (m >= 65)
    DC4 = "dc4"  # DLE DC4 fn ...: fn 1/2 -> 3 bytes, fn 8 -> 7 bytes, else 3


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    prefix: bytes
    params: Params = Params.FIXED
    count: int = 0
    realtime: bool = False  # executed on arrival, even while the printer is halted


ESC, GS, DLE, FS = b"\x1b", b"\x1d", b"\x10", b"\x1c"
INTRODUCERS = frozenset({0x1B, 0x1D, 0x10, 0x1C})

TABLE: tuple[CommandSpec, ...] = (
    CommandSpec("initialize", ESC + b"@"),
    CommandSpec("select_code_table", ESC + b"t", count=1),
    CommandSpec("align", ESC + b"a", count=1),
    CommandSpec("print_mode", ESC + b"!", count=1),
    CommandSpec("bold", ESC + b"E", count=1),
    CommandSpec("double_strike", ESC + b"G", count=1),
    CommandSpec("underline", ESC + b"-", count=1),
    CommandSpec("font", ESC + b"M", count=1),
    CommandSpec("feed_lines", ESC + b"d", count=1),
    CommandSpec("feed_dots", ESC + b"J", count=1),
    CommandSpec("default_line_spacing", ESC + b"2"),
    CommandSpec("line_spacing", ESC + b"3", count=1),
    CommandSpec("upside_down", ESC + b"{", count=1),
    CommandSpec("rotate", ESC + b"V", count=1),
    CommandSpec("international_set", ESC + b"R", count=1),
    CommandSpec("panel_buttons", ESC + b"c5", count=1),
    CommandSpec("paper_sensor_stop", ESC + b"c4", count=1),
    CommandSpec("paper_sensor_signal", ESC + b"c3", count=1),
    CommandSpec("cash_drawer", ESC + b"p", count=3),
    CommandSpec("bit_image_column", ESC + b"*", Params.COLUMN),
    CommandSpec("character_size", GS + b"!", count=1),
    CommandSpec("smoothing", GS + b"b", count=1),
    CommandSpec("invert", GS + b"B", count=1),
    CommandSpec("left_margin", GS + b"L", count=2),
    CommandSpec("print_area_width", GS + b"W", count=2),
    CommandSpec("hri_position", GS + b"H", count=1),
    CommandSpec("hri_font", GS + b"f", count=1),
    CommandSpec("barcode_height", GS + b"h", count=1),
    CommandSpec("barcode_width", GS + b"w", count=1),
    CommandSpec("barcode", GS + b"k", Params.BARCODE),
    CommandSpec("cut", GS + b"V", Params.CUT),
    CommandSpec("raster_image", GS + b"v0", Params.RASTER),
    CommandSpec("two_d_code", GS + b"(k", Params.LEN16),
    CommandSpec("graphics", GS + b"(L", Params.LEN16),
    CommandSpec("print_confirmation", GS + b"(H", Params.LEN16),
    CommandSpec("set_user_setup", GS + b"(E", Params.LEN16),
    CommandSpec("transmit_status", GS + b"r", count=1),
    CommandSpec("auto_status_back", GS + b"a", count=1),
    CommandSpec("realtime_status", DLE + b"\x04", count=1, realtime=True),
    CommandSpec("realtime_request", DLE + b"\x05", count=1, realtime=True),
    CommandSpec("realtime_dc4", DLE + b"\x14", Params.DC4, realtime=True),
    CommandSpec("kanji_mode_off", FS + b".", count=0),
)


def build_trie(table: tuple[CommandSpec, ...] = TABLE) -> dict[int, object]:
    """Nested dicts byte -> (dict | CommandSpec); a prefix is never also a full command."""
    root: dict[int, object] = {}
    for spec in table:
        node = root
        for b in spec.prefix[:-1]:
            child = node.setdefault(b, {})
            if not isinstance(child, dict):
                raise ValueError(f"{spec.name}: prefix clashes with {child}")
            node = child
        if spec.prefix[-1] in node:
            raise ValueError(f"{spec.name}: duplicate prefix {spec.prefix!r}")
        node[spec.prefix[-1]] = spec
    return root


TRIE = build_trie()
