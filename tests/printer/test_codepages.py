"""Kazakh letters through python-escpos (RK1048 patch, ESC t resent after ESC @) and back through the simulator,
which follows ESC t."""

from __future__ import annotations

from escpos.printer import Dummy

import hardware.printer.codepage  # noqa: F401  (the RK1048 patch under test)
from core.receipt_document import Document, Text
from hardware.printer.encoder import JobEncoder
from hardware.printer.profiles import profile_by_name
from simulators.printer.virtual_printer import VirtualPrinter

KAZAKH = "ӘәҒғҚқҢңӨөҰұҮүҺһІі№"


def test_python_escpos_encodes_kazakh_with_esc_t_53() -> None:
    p = Dummy(profile="TM-T20II")
    p.charcode("RK1048")
    p.text("Қазақстан Республикасы\n")
    assert p.output == b"\x1bt\x35" + "Қазақстан Республикасы\n".encode("kz1048")
    assert p.output.startswith(b"\x1bt5\x8d\xe0\xe7\xe0\x9d\xf1")
    letters = Dummy(profile="TM-T20II")
    letters.charcode("RK1048")
    letters.text(KAZAKH)
    assert letters.output[3:] == bytes.fromhex("a3 bc aa ba 8d 9d bd be a5 b4 a1 a2 af bf 8e 9e b2 b3 b9")


def test_every_job_resends_esc_t_after_esc_at() -> None:
    enc = JobEncoder(profile_by_name("kz1048-80mm"))
    job = enc.encode(Document((Text("Привет Қазақстан"),)))
    assert job.startswith(b"\x1b@\x1bt\x35")
    second = enc.encode(Document((Text("Привет"),)))
    assert second.startswith(b"\x1b@\x1bt\x35")  # python-escpos 3.1 would skip it without the workaround


def test_simulator_decodes_the_bytes_by_the_selected_code_table() -> None:
    sim = VirtualPrinter(profile_by_name("kz1048-80mm"))
    body = "Қазақ".encode("kz1048")
    sim.feed(b"\x1b@\x1bt\x35" + body + b"\n\x1bt\x11" + body + b"\n\x1dV\x00")
    lines = sim.receipts[0].text_lines()
    assert lines[0] == "Қазақ"
    assert lines[1] == body.decode("cp866")  # the same bytes under CP866 (ESC t 17) are other letters
    assert lines[1] != "Қазақ"


def test_esc_at_resets_the_code_table_in_the_simulator() -> None:
    sim = VirtualPrinter(profile_by_name("kz1048-80mm"))
    sim.feed(b"\x1bt\x35\x1b@" + "Ә".encode("kz1048") + b"\n\x1dV\x00")
    assert sim.receipts[0].text_lines()[0] == "Ә".encode("kz1048").decode("cp437")


def test_text_mode_prints_tenge_as_tg_and_georgian_as_raster() -> None:
    profile = profile_by_name("kz1048-80mm")
    enc = JobEncoder(profile)
    sim = VirtualPrinter(profile)
    sim.feed(enc.encode(Document((Text("Сумма 10 812.50 ₸"), Text("საქართველო")))))
    items = sim.receipts[0].items
    assert items[0].text == "Сумма 10 812.50 тг" and not items[0].raster  # type: ignore[union-attr]
    assert items[1].text == "საქართველო" and items[1].raster  # type: ignore[union-attr]
    assert enc.text_lines == 1 and enc.raster_lines == 1


def test_russified_mode_maps_kazakh_letters_to_russian() -> None:
    profile = profile_by_name("cp866-58mm")
    sim = VirtualPrinter(profile)
    sim.feed(JobEncoder(profile).encode(Document((Text("Қазақстан Әділет Үкімет"),))))
    assert sim.receipts[0].text_lines()[0] == "Казакстан Аділет Укімет".replace("і", "i")
