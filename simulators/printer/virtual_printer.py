"""The virtual ESC/POS printer: executes parsed commands on a paper model and answers DLE EOT and GS ( H truthfully.

It follows the code page chosen by ESC t (through the profile's escpos-printer-db table, RK1048 = kz1048 included),
keeps style state, reads raster text lines back, and hands every cut (or torn) receipt to the store. Status and
faults are scriptable: a roll of a given length, paper out after N cuts, cover open, offline, no status reply, no
GS ( H reply.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from escpos import codepages
from escpos.printer import Dummy
from PIL import Image, ImageOps

import hardware.printer.codepage  # noqa: F401  (teaches python-escpos' table that RK1048 is Python's kz1048)
from core.clock import Clock, SystemClock
from core.structured_log import log_event
from hardware.printer.fonts import FontNotFoundError
from hardware.printer.profiles import PrinterProfile
from hardware.printer.raster import RasterTextReader, raster_font
from hardware.printer.status import confirmation_reply
from simulators.printer.parser import Command, EscPosParser, TextRun, Unknown
from simulators.printer.receipt import PrintedImage, PrintedQr, PrintedReceipt, PrintedText

log = logging.getLogger(__name__)

LINE_ROWS = 30  # dot rows one text line takes (1/6 inch at 180 dpi; unverified for each model)
_PRINTING = frozenset(
    {"feed_lines", "feed_dots", "raster_image", "two_d_code", "cut", "bit_image_column", "barcode"}
)
ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}


@dataclass
class PrinterScript:
    """Scripted state and faults; change fields through VirtualPrinter methods (they take the lock)."""

    roll_rows: int | None = None  # dot rows left on the roll; None = endless
    near_end_rows: int = 2000  # the near-end sensor trips below this
    paper_out_after_cuts: int | None = None  # the roll ends right after this many more cuts
    cover_open: bool = False
    offline: bool = False
    no_status_reply: bool = False
    no_confirmation: bool = False


def codec_table(escpos_profile: str) -> dict[int, str]:
    """ESC t n -> Python codec for a python-escpos profile (only pages Python can decode)."""
    pages = Dummy(profile=escpos_profile).profile.get_code_pages()
    out: dict[int, str] = {}
    for name, number in pages.items():
        data = codepages.CodePages.data.get(name, {})
        codec = data.get("python_encode")
        if codec:
            out[int(number)] = codec
    return out


class VirtualPrinter:
    """Thread-safe: TCP and pty connections may feed it at once (bytes of one call are processed together)."""

    def __init__(
        self,
        profile: PrinterProfile,
        on_receipt: Callable[[PrintedReceipt], None] | None = None,
        clock: Clock | None = None,
        strict: bool = False,
        script: PrinterScript | None = None,
    ) -> None:
        self.profile = profile
        self.clock = clock or SystemClock()
        self.script = script or PrinterScript()
        self.on_receipt = on_receipt
        self.codecs = codec_table(profile.escpos_profile)
        self._lock = threading.RLock()
        self._parser = EscPosParser(strict=strict)
        try:
            self._reader: RasterTextReader | None = RasterTextReader(
                raster_font(profile.width_px, profile.cell_width)
            )
        except FontNotFoundError as exc:
            log_event(log, "printer_sim.no_font", error=str(exc))
            self._reader = None
        self.receipts: list[PrintedReceipt] = []
        self.unknown_commands: list[bytes] = []
        self.cuts = 0
        self._reset_modes()
        self._receipt = PrintedReceipt()
        self._line = bytearray()
        self._line_style: tuple[str, bool, int] | None = None
        self._qr_data = b""
        self._qr_module = 3
        self._lost = False  # something was dropped since the printer last halted

    # -- state -----------------------------------------------------------------------------------------
    def _reset_modes(self) -> None:
        self.page = 0
        self.align = "left"
        self.bold = False
        self.scale = 1

    @property
    def paper_end(self) -> bool:
        return self.script.roll_rows is not None and self.script.roll_rows <= 0

    @property
    def halted(self) -> bool:
        return self.paper_end or self.script.cover_open or self.script.offline

    def status_byte(self, n: int) -> int:
        s = self.script
        if n == 1:
            return 0x12 | (0x08 if self.halted else 0)
        if n == 2:
            return 0x12 | (0x04 if s.cover_open else 0) | (0x20 if self.paper_end else 0)
        if n == 4:
            if self.paper_end:
                return 0x72
            near = s.roll_rows is not None and s.roll_rows < s.near_end_rows
            return 0x1E if near else 0x12
        return 0x12

    # -- scripting -------------------------------------------------------------------------------------
    def load_paper(self, rows: int | None = None) -> None:
        """A new roll (``rows`` long, None = endless); printing resumes with the next data received."""
        with self._lock:
            self.script.roll_rows = rows
            self.script.paper_out_after_cuts = None
            self._lost = False
            log_event(log, "printer_sim.paper_loaded", rows=rows)

    def set_cover_open(self, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._tear("cover open")
            else:
                self._lost = False
            self.script.cover_open = is_open

    def set_offline(self, offline: bool) -> None:
        with self._lock:
            self.script.offline = offline
            if not offline:
                self._lost = False

    def configure(self, **changes: object) -> None:
        """Set PrinterScript fields by name (e.g. ``no_status_reply=True``)."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.script, key):
                    raise ValueError(f"no printer script field {key!r}")
                setattr(self.script, key, value)

    # -- the byte stream -------------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Process bytes from the host; return the bytes the printer sends back."""
        replies = bytearray()
        with self._lock:
            if not self.halted:
                self._receipt.raw += data
            for event in self._parser.feed(data):
                if isinstance(event, TextRun):
                    if not self.halted:
                        self._text(event.data)
                    elif any(b >= 0x20 or b == 0x0A for b in event.data):
                        self._lost = True
                elif isinstance(event, Command):
                    self._command(event, replies)
                elif isinstance(event, Unknown):
                    self.unknown_commands.append(event.data)
                    log_event(log, "printer_sim.unknown_command", bytes=event.data.hex(" "))
        return bytes(replies)

    def _text(self, data: bytes) -> None:
        for b in data:
            if b == 0x0A:
                self._print_line()
            elif b == 0x09:
                self._add_char(0x20)
            elif b >= 0x20:
                self._add_char(b)

    def _add_char(self, b: int) -> None:
        if not self._line:
            self._line_style = (self.align, self.bold, self.scale)
        self._line.append(b)

    def _decode(self, raw: bytes) -> str:
        codec = self.codecs.get(self.page)
        if codec is None:
            log_event(log, "printer_sim.unknown_code_page", page=self.page)
            codec = "cp437"
        return raw.decode(codec, errors="replace")

    def _print_line(self) -> None:
        align, bold, scale = self._line_style or (self.align, self.bold, self.scale)
        text = self._decode(bytes(self._line))
        self._line.clear()
        self._line_style = None
        if self._consume(LINE_ROWS * scale):
            self._receipt.items.append(PrintedText(text.rstrip(), align, bold, scale, raster=False))

    def _consume(self, rows: int) -> bool:
        """Take ``rows`` off the roll; False (and the receipt is torn) when the roll runs out first."""
        s = self.script
        if s.roll_rows is None:
            self._receipt.rows += rows
            return True
        if rows > s.roll_rows:
            s.roll_rows = 0
            self._tear("paper end")
            return False
        s.roll_rows -= rows
        self._receipt.rows += rows
        return True

    def _tear(self, reason: str) -> None:
        self._lost = True
        if self._receipt.items or self._line:
            self._receipt.torn = True
            log_event(log, "printer_sim.receipt_torn", reason=reason, items=len(self._receipt.items))
            self._finish()
        self._line.clear()

    def _finish(self) -> None:
        receipt = self._receipt
        receipt.finished_at = self.clock.now()
        receipt.number = len(self.receipts) + 1
        self.receipts.append(receipt)
        self._receipt = PrintedReceipt()
        if self.on_receipt is not None:
            self.on_receipt(receipt)

    def _command(self, cmd: Command, replies: bytearray) -> None:
        name, a = cmd.name, cmd.args
        if name == "realtime_status":
            if not self.script.no_status_reply and a[0] in (1, 2, 3, 4):
                replies.append(self.status_byte(a[0]))
            return
        if cmd.spec.realtime:
            return
        if self.halted:
            if name == "print_confirmation":
                # everything before it printed when the halt came at a job boundary with nothing lost since
                if not self._lost and len(a) >= 8 and not self.script.no_confirmation:
                    replies += confirmation_reply(bytes(a[4:8]))
            elif name in _PRINTING:
                self._lost = True  # a halted printer drops what it cannot print (the host must resend)
            return
        if name == "initialize":
            self._line.clear()
            self._reset_modes()
        elif name == "select_code_table":
            self.page = a[0]
        elif name == "align":
            self.align = ALIGN.get(a[0], "left")
        elif name == "print_mode":
            self.bold = bool(a[0] & 0x08)
            self.scale = 2 if a[0] & 0x30 == 0x30 else 1
        elif name == "bold":
            self.bold = bool(a[0] & 1)
        elif name == "character_size":
            self.scale = 2 if (a[0] >> 4) and (a[0] & 0x0F) else 1
        elif name == "feed_lines":
            if self._line:
                self._print_line()
            for _ in range(a[0]):
                if not self._consume(LINE_ROWS):
                    return
                self._receipt.items.append(PrintedText("", "left", False, 1, raster=False))
        elif name == "feed_dots":
            self._consume(a[0])
        elif name == "raster_image":
            self._raster(a)
        elif name == "two_d_code":
            self._two_d(a)
        elif name == "print_confirmation":
            if len(a) >= 8 and a[2] == 0x30 and a[3] == 0x30 and not self.script.no_confirmation:
                replies += confirmation_reply(bytes(a[4:8]))
        elif name == "cut":
            self._cut()

    def _raster(self, a: bytes) -> None:
        if self._line:
            self._print_line()
        w_bytes, h = a[1] + 256 * a[2], a[3] + 256 * a[4]
        if w_bytes * 8 > self.profile.width_px or h == 0:
            log_event(log, "printer_sim.bad_raster", width=w_bytes * 8, height=h)
            return
        ink = Image.frombytes("1", (w_bytes * 8, h), bytes(a[5:]))
        image = ImageOps.invert(ink.convert("L")).convert("1")
        if not self._consume(h):
            return
        read = self._reader.read_line(image) if self._reader is not None else None
        if read is not None:
            self._receipt.items.append(PrintedText(read.text, read.align, read.bold, read.scale, raster=True))
            return
        self._receipt.items.append(PrintedImage(image, decode_qr(image)))

    def _two_d(self, a: bytes) -> None:
        if len(a) < 4 or a[2] != 0x31:
            return  # only QR (cn 49) is simulated
        fn = a[3]
        if fn == 0x43 and len(a) >= 5:
            self._qr_module = a[4]
        elif fn == 0x50:
            self._qr_data = bytes(a[5:])
        elif fn == 0x51:
            if self._line:
                self._print_line()
            data = self._qr_data.decode("utf-8", errors="replace")
            if self._consume(qr_rows(data, self._qr_module)):
                self._receipt.items.append(PrintedQr(data, self._qr_module))

    def _cut(self) -> None:
        if self._line:
            self._print_line()
        if self.halted:
            return
        self.cuts += 1
        self._finish()
        s = self.script
        if s.paper_out_after_cuts is not None:
            s.paper_out_after_cuts -= 1
            if s.paper_out_after_cuts <= 0:
                s.roll_rows = 0
                s.paper_out_after_cuts = None
                log_event(log, "printer_sim.paper_end", after_cut=self.cuts)


def qr_rows(data: str, module: int) -> int:
    import qrcode

    qr = qrcode.QRCode(border=0)
    qr.add_data(data)
    qr.make(fit=True)
    return int(qr.modules_count) * module


def decode_qr(image: Image.Image) -> str | None:
    """The text of a QR code drawn as a raster image, or None."""
    if image.width < 21 or image.height < 21:
        return None
    import cv2
    import numpy as np

    padded = ImageOps.expand(image.convert("L"), border=32, fill=255)
    arr = np.asarray(padded, dtype=np.uint8)
    # OpenCV's classic detector misses about 6 % of valid codes (measured on 300 random receipt URLs); its
    # ArUco-based detector finds the rest: together they read all 300, at module sizes 3 and 6
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        for scale in (1, 2, 3):
            view = (
                arr
                if scale == 1
                else cv2.resize(arr, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            )
            text, _points, _ = detector.detectAndDecode(view)
            if text:
                return str(text)
    return None
