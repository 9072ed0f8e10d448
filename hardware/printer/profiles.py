"""Per-printer profiles: paper width, text mode (KZ-1048 code page, Russified CP866 or raster), native QR, GS ( H."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TextMode(enum.StrEnum):
    """How text reaches the paper."""

    KZ1048 = "kz1048"  # ESC t 53, the printer's own font; Georgian lines still go as raster
    CP866_RUSSIFIED = "cp866_russified"  # ESC t 17 with the lossy Kazakh -> Russian letter mapping
    RASTER = "raster"  # every non-ASCII line drawn with Pillow + DejaVu Sans Mono and sent as GS v 0


@dataclass(frozen=True, slots=True)
class PrinterProfile:
    """What patrolkit needs to know about one printer model."""

    name: str
    escpos_profile: str  # a profile name of escpos-printer-db (python-escpos capabilities)
    width_px: int  # printable dots per line
    columns: int  # characters per line in font A
    text_mode: TextMode
    native_qr: bool  # GS ( k supported
    print_confirmation: bool  # GS ( H fn 48 supported
    qr_module: int = 6  # QR module size in dots

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.width_px % 8:
            raise ValueError(f"profile {self.name}: width_px must be a positive multiple of 8")
        if not 16 <= self.columns <= 96:
            raise ValueError(f"profile {self.name}: columns must be 16..96")
        if not 1 <= self.qr_module <= 16:
            raise ValueError(f"profile {self.name}: qr_module must be 1..16")

    @property
    def cell_width(self) -> int:
        """Width of one raster character cell in dots (the printer's own font A has the same pitch)."""
        return self.width_px // self.columns


PROFILES: dict[str, PrinterProfile] = {
    p.name: p
    for p in (
        # Epson TM-T20II/III, TM-m30 and similar 80 mm printers: RK1048 is ESC t 53, GS ( k and GS ( H work.
        PrinterProfile("kz1048-80mm", "TM-T20II", 576, 48, TextMode.KZ1048, True, True),
        # The same printer, but every Cyrillic line rasterised (e.g. Georgian deployments).
        PrinterProfile("raster-80mm", "TM-T20II", 576, 48, TextMode.RASTER, True, True),
        # Cheap 58 mm printers (POS-5890, ZJ-5870): no KZ-1048, no GS ( k, no GS ( H.
        PrinterProfile("raster-58mm", "POS-5890", 384, 32, TextMode.RASTER, False, False, qr_module=4),
        # A 58 mm printer with CP866 only, where policy accepts the Russified letters.
        PrinterProfile(
            "cp866-58mm", "POS-5890", 384, 32, TextMode.CP866_RUSSIFIED, False, False, qr_module=4
        ),
    )
}


def profile_by_name(name: str) -> PrinterProfile:
    """Look a built-in profile up; an unknown name raises ValueError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown printer profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None
