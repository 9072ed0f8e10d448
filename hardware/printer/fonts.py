"""Find the DejaVu Sans Mono font files: an override folder, else the copy shipped with patrolkit
(``core/fonts/``), else the machine's own; fail with a message naming the package to install."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from core.fonts import FONT_DIR

REGULAR = "DejaVuSansMono.ttf"
BOLD = "DejaVuSansMono-Bold.ttf"
FONT_DIR_ENV = "PATROLKIT_FONT_DIR"
SHIPPED_DIR = FONT_DIR


class FontNotFoundError(RuntimeError):
    """The raster font is missing."""


@dataclass(frozen=True, slots=True)
class FontFiles:
    regular: Path
    bold: Path


def _package_font_dirs() -> list[Path]:
    """Font folders shipped inside Python packages that carry DejaVu (matplotlib does), found without importing."""
    out: list[Path] = []
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            out.append(Path(loc) / "mpl-data" / "fonts" / "ttf")
    return out


def candidate_dirs() -> list[Path]:
    """Where to look, in order: $PATROLKIT_FONT_DIR, the shipped copy (the same glyphs on every machine), the
    usual system and user font folders, Python packages."""
    dirs: list[Path] = []
    if os.environ.get(FONT_DIR_ENV):
        dirs.append(Path(os.environ[FONT_DIR_ENV]))
    dirs += [
        SHIPPED_DIR,
        Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu: fonts-dejavu-core
        Path("/usr/share/fonts/dejavu"),  # Fedora, Arch (older)
        Path("/usr/share/fonts/TTF"),  # Arch
        Path("/usr/share/fonts/dejavu-sans-mono-fonts"),  # Fedora
        Path("/usr/local/share/fonts"),
        Path("/usr/local/share/fonts/dejavu"),  # FreeBSD
        Path.home() / ".local/share/fonts",
        Path.home() / ".fonts",
        Path("/Library/Fonts"),
        Path.home() / "Library/Fonts",
        Path("/opt/homebrew/share/fonts"),
    ]
    return dirs + _package_font_dirs()


def find_fonts(dirs: list[Path] | None = None) -> FontFiles:
    """The first folder holding both faces wins; none found raises FontNotFoundError naming fonts-dejavu-core."""
    searched = dirs if dirs is not None else candidate_dirs()
    for d in searched:
        regular, bold = d / REGULAR, d / BOLD
        if regular.is_file() and bold.is_file():
            return FontFiles(regular, bold)
    raise FontNotFoundError(
        f"font {REGULAR} / {BOLD} not found (searched: {', '.join(str(d) for d in searched)}). "
        f"Install the Debian package fonts-dejavu-core (apt-get install fonts-dejavu-core), "
        f"or point {FONT_DIR_ENV} at a folder holding the DejaVu Sans Mono .ttf files."
    )
