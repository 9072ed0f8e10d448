"""Cut receipts are stored as text with markers and as a PNG of the profile's width; torn ones are marked."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from core.receipt_document import Align, Document, QrCode, Text
from hardware.printer.encoder import JobEncoder
from hardware.printer.profiles import profile_by_name
from simulators.printer.store import ReceiptStore
from simulators.printer.virtual_printer import VirtualPrinter


def test_receipt_files_hold_text_png_and_raw_bytes(tmp_path: Path) -> None:
    profile = profile_by_name("raster-58mm")
    store = ReceiptStore(profile, tmp_path)
    sim = VirtualPrinter(profile, on_receipt=store.add, strict=True)
    job = JobEncoder(profile).encode(
        Document((Text("ИТОГО / БАРЛЫҒЫ", Align.CENTER, bold=True), QrCode("https://v/r/x")))
    )
    sim.feed(job)

    text = (tmp_path / "receipt-0001.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[-1] == "----- CUT -----"
    assert "[QR: https://v/r/x]" in lines  # an image QR (no GS ( k on this profile) decoded back
    heading = next(line for line in lines if line.strip())
    assert heading.startswith(" ") and len(heading) < profile.columns  # centred on 32 columns
    with Image.open(tmp_path / "receipt-0001.png") as png:
        assert png.width == 384
    assert (tmp_path / "receipt-0001.bin").read_bytes() == job


def test_torn_receipt_is_marked(tmp_path: Path) -> None:
    profile = profile_by_name("kz1048-80mm")
    store = ReceiptStore(profile, tmp_path)
    sim = VirtualPrinter(profile, on_receipt=store.add)
    sim.load_paper(70)
    sim.feed(JobEncoder(profile).encode(Document(tuple(Text(f"строка {i}") for i in range(5)))))
    assert store.receipts[0].torn
    assert (
        (tmp_path / "receipt-0001.txt").read_text(encoding="utf-8").splitlines()[-1].startswith("~~~~~ TORN")
    )
    assert sim.status_byte(4) == 0x72 and sim.status_byte(2) == 0x32 and sim.status_byte(1) == 0x1A
