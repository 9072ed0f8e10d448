"""What the virtual printer put on paper: the items of one receipt (text lines, raster images, QR codes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from PIL import Image


@dataclass(frozen=True, slots=True)
class PrintedText:
    text: str
    align: str  # left | center | right
    bold: bool
    scale: int  # 1 or 2
    raster: bool  # True when it arrived as a raster image and was read back


@dataclass(frozen=True, slots=True)
class PrintedImage:
    image: Image.Image  # mode "1", black ink on white
    qr_data: str | None = None  # set when the image is a QR code that decodes


@dataclass(frozen=True, slots=True)
class PrintedQr:
    data: str
    module: int
    native: bool = True


Item = PrintedText | PrintedImage | PrintedQr


@dataclass
class PrintedReceipt:
    """One piece of paper: ended by a cut, or torn when the paper ran out or the cover opened mid-receipt."""

    number: int = 0
    items: list[Item] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    rows: int = 0
    torn: bool = False
    finished_at: datetime | None = None

    def text_lines(self) -> list[str]:
        """The receipt's text, one entry per printed line (raster text included, read back)."""
        out: list[str] = []
        for item in self.items:
            if isinstance(item, PrintedText):
                out.append(item.text)
            elif isinstance(item, PrintedQr) or (isinstance(item, PrintedImage) and item.qr_data is not None):
                out.append(f"[QR: {item.qr_data if isinstance(item, PrintedImage) else item.data}]")
            else:
                out.append(f"[IMG {item.image.width}x{item.image.height}]")
        return out

    def qr_codes(self) -> list[str]:
        out: list[str] = []
        for item in self.items:
            if isinstance(item, PrintedQr):
                out.append(item.data)
            elif isinstance(item, PrintedImage) and item.qr_data is not None:
                out.append(item.qr_data)
        return out
