"""Receipts speak Kazakh first: every heading and label is Kazakh, then Russian; the offence carries its sourced
Kazakh title; "approved", the trace label and the duplicate's marks have Kazakh too (printed and read back)."""

from __future__ import annotations

from typing import Any

from hardware.printer.raster import RasterTextReader, raster_font

KAZAKH_TITLE_592_1 = "Жылдамдықтың 10-нан 20 км/сағ-қа дейін артуы"


def _printed(rig: Any, receipt: Any) -> tuple[str, RasterTextReader]:
    """The receipt's text in one line (raster lines read back; homoglyphs in canonical form) and the reader."""
    reader = RasterTextReader(raster_font(rig.profile.width_px, rig.profile.cell_width))
    return " ".join(" ".join(reader.canonical(x) for x in receipt.text_lines() if x).split()), reader


def test_receipt_headings_labels_and_offence_are_kazakh_first(make_rig: Any) -> None:
    rig = make_rig("kz1048-80mm", "tcp")
    rig.service.print_receipts(rig.payment_id)
    text, r = _printed(rig, rig.store.receipts[0])

    assert text.startswith(r.canonical("ҚР ІІМ / МВД РК"))
    assert text.index(r.canonical("Әкімшілік айыппұлды төлеу туралы түбіртек")) < text.index(
        r.canonical("Квитанция об уплате")
    )
    for line in (
        "Хаттама / Протокол №: ERAP-2026-000123",
        "МАҚҰЛДАНДЫ / ОДОБРЕНО / APPROVED",
        "Түбіртек / Чек / Trace: 0017 / 000042",
        f"Құқық бұзушылық / Нарушение: {KAZAKH_TITLE_592_1} / Превышение скорости",
    ):
        assert r.canonical(line) in text, line
    assert text.index(r.canonical("Жеңілдікпен төлеу")) < text.index(r.canonical("Оплата со скидкой"))


def test_duplicate_marks_are_kazakh_first(make_rig: Any) -> None:
    rig = make_rig("raster-58mm", "tcp")
    rig.service.print_receipts(rig.payment_id)
    rig.service.reprint("ERAP-2026-000123", 1)
    text, r = _printed(rig, rig.store.receipts[-1])

    for line in (
        "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1",
        "Түпнұсқаның қайта басылған көшірмесі / Повторная печать оригинала",
        "Қайта басу / Повторная печать:",
    ):
        assert r.canonical(line) in text, line
