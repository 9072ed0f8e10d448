"""Both copies of a payment print through the virtual printer over TCP and a pty, in KZ-1048 and raster text mode,
and read back field by field (Kazakh letters included); paper-out recovery gives the right numbered duplicates."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from sqlalchemy import func, select

from core.receipt_code import decode_receipt_code, verify_receipt_code
from core.receipt_document import wrap
from core.receipt_layout import CopySpec, data_from_rows, fields
from edge.db.payments import Payment
from edge.db.receipts import JobState, ReceiptJob
from edge.sync.outbox import OutboxContent, OutboxRecord
from hardware.printer.raster import RasterTextReader, raster_font
from simulators.printer.receipt import PrintedReceipt

MODES = ["kz1048-80mm", "raster-80mm"]


def expected_lines(rig, copy_no: int) -> list[str]:  # type: ignore[no-untyped-def]
    """What the fields of ``copy_no`` look like on paper: shown per the code page, wrapped to the columns."""
    from edge.db.protocols import Officer, Protocol

    with rig.sessions() as s:
        payment = s.get(Payment, rig.payment_id)
        protocol = s.get(Protocol, payment.protocol_number)
        officer = s.get(Officer, payment.officer_badge)
        data = data_from_rows(payment, protocol, officer.full_name, officer.unit)
    spec = CopySpec(copy_no, 0, rig.service.clock.now(), copy_no == 1, "x", "Asia/Almaty", "v")
    out: list[str] = []
    for label, value in fields(data, spec):
        text = f"{label}: {value}"
        if label.startswith("ТӨЛЕНДІ"):
            continue  # printed as a centred heading + large amount, checked separately
        out.append(text)
    return out


def printed_lines(rig, receipt: PrintedReceipt) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in receipt.text_lines() if line]


def contains_field(rig, printed: list[str], logical: str) -> bool:  # type: ignore[no-untyped-def]
    reader = RasterTextReader(raster_font(rig.profile.width_px, rig.profile.cell_width))
    shown = rig.driver.encoder.as_text(logical) or logical
    want = [reader.canonical(x) for x in wrap(shown, rig.profile.columns)]
    have = [reader.canonical(x) for x in printed]
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))


@pytest.mark.parametrize("transport", ["tcp", "pty"])
@pytest.mark.parametrize("mode", MODES)
def test_both_copies_print_and_read_back_field_by_field(make_rig, mode: str, transport: str) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(mode, transport)
    run = rig.service.print_receipts(rig.payment_id)

    assert run.complete and run.instruction is None
    assert [(r.copy_no, r.duplicate_no, r.state) for r in run.results] == [
        (1, 0, JobState.CONFIRMED),
        (2, 0, JobState.CONFIRMED),
    ]
    receipts = rig.store.receipts
    assert len(receipts) == 2 and not any(r.torn for r in receipts)
    for copy_no, receipt in zip((1, 2), receipts, strict=True):
        printed = printed_lines(rig, receipt)
        for logical in expected_lines(rig, copy_no):
            assert contains_field(rig, printed, logical), f"copy {copy_no} lacks {logical!r}:\n" + "\n".join(
                printed
            )
    reader = RasterTextReader(raster_font(rig.profile.width_px, rig.profile.cell_width))
    copy1 = [reader.canonical(x) for x in printed_lines(rig, receipts[0])]
    copy2 = [reader.canonical(x) for x in printed_lines(rig, receipts[1])]
    assert reader.canonical("ҚҰҚЫҚ БҰЗУШЫНЫҢ ДАНАСЫ (1/2)") in copy1
    assert reader.canonical("Экземпляр нарушителя") in copy1
    assert reader.canonical("ХАТТАМАҒА АРНАЛҒАН ДАНА (2/2)") in copy2
    # the IIN is masked on the driver's copy only
    assert any(reader.canonical("ЖСН / ИИН: 85******0124") == x for x in copy1)
    assert any(reader.canonical("ЖСН / ИИН: 850101300124") == x for x in copy2)
    # the amount paid, with the tenge sign where the mode can draw it
    amount = "10 812.50 тг" if mode == "kz1048-80mm" else "10 812.50 ₸"
    assert reader.canonical(amount) in copy1 and reader.canonical(amount) in copy2
    # every Kazakh letter of the driver's name survived the trip
    assert reader.canonical("Жүргізуші / Водитель: Жұмабаев Нұрлан Өмірұлы") in copy1
    # one QR per copy, pointing at the verification page, with a valid signature
    for receipt in receipts:
        (qr,) = receipt.qr_codes()
        assert qr.startswith("https://verify.example.kz/r/")
        verify_receipt_code(qr.rsplit("/", 1)[1], rig.service.identity.private_key.public_key())
    # the PNGs exist, open, and have the profile's width
    pngs = rig.store.files()
    assert len(pngs) == 2
    for path in pngs:
        with Image.open(path) as img:
            assert img.width == rig.profile.width_px and img.height > 500
    # raster mode really sent Cyrillic lines as images, KZ-1048 mode as text
    raster_used = any(i.raster for r in receipts for i in r.items if hasattr(i, "raster") and i.text)
    assert raster_used == (mode == "raster-80mm")


def _events(rig) -> list[dict]:  # type: ignore[no-untyped-def]
    with rig.sessions() as s:
        bodies = s.scalars(
            select(OutboxContent.body)
            .join_from(OutboxRecord, OutboxContent, OutboxContent.seq == OutboxRecord.seq)
            .where(OutboxRecord.record_type == "receipt_job")
            .order_by(OutboxRecord.seq)
        )
        return [dict(json.loads(b), **json.loads(json.loads(b)["detail"])) for b in bodies]


def _payments(rig) -> int:  # type: ignore[no-untyped-def]
    with rig.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Payment)) or 0)


def test_paper_out_between_copies_keeps_the_payment_and_prints_copy_2_as_duplicate(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig("kz1048-80mm", "tcp")
    rig.sim.configure(paper_out_after_cuts=1)

    run = rig.service.print_receipts(rig.payment_id)

    assert [(r.copy_no, r.state) for r in run.results] == [(1, JobState.CONFIRMED), (2, JobState.FAILED)]
    assert run.results[1].reason.startswith("paper end")
    assert run.pending_copies == (2,)
    assert run.instruction is not None and run.instruction.code == "paper_end"
    assert "НЕ оплачивать" in run.instruction.text_ru and "ТӨЛЕМЕҢІЗ" in run.instruction.text_kz
    assert len(rig.store.receipts) == 1

    rig.sim.load_paper(None)
    again = rig.service.print_receipts(rig.payment_id)

    assert [(r.copy_no, r.duplicate_no, r.state) for r in again.results] == [(2, 1, JobState.CONFIRMED)]
    assert again.complete
    assert _payments(rig) == 1
    dup = rig.store.receipts[-1].text_lines()
    assert "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1" in dup and "ХАТТАМАҒА АРНАЛҒАН ДАНА (2/2)" in dup
    assert "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1" not in rig.store.receipts[0].text_lines()
    states = [(e["copy_no"], e["duplicate_no"], e["state"]) for e in _events(rig)]
    assert states == [
        (1, 0, "PENDING"), (1, 0, "SENT"), (1, 0, "CONFIRMED"),
        (2, 0, "PENDING"), (2, 0, "FAILED"),
        (2, 1, "PENDING"), (2, 1, "SENT"), (2, 1, "CONFIRMED"),
    ]  # fmt: skip
    events = [e["event"] for e in _events(rig)]
    assert events == [
        "queued",
        "printing",
        "printed",
        "queued",
        "failed",
        "reprint_requested",
        "printing",
        "printed",
    ]


def _rows_of_copy(rig, copy_no: int) -> int:  # type: ignore[no-untyped-def]
    """Dot rows copy ``copy_no`` takes, measured on a throwaway virtual printer."""
    from edge.db.protocols import Officer, Protocol
    from simulators.printer.virtual_printer import VirtualPrinter

    with rig.sessions() as s:
        payment = s.get(Payment, rig.payment_id)
        protocol = s.get(Protocol, payment.protocol_number)
        officer = s.get(Officer, payment.officer_badge)
        data = data_from_rows(payment, protocol, officer.full_name, officer.unit)
    probe = VirtualPrinter(rig.profile)
    probe.feed(rig.driver.encoder.encode(rig.service.document(data, copy_no, 0)))
    return probe.receipts[0].rows


def test_paper_out_in_the_middle_of_copy_2_tears_it_and_reprints_it_whole(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig("kz1048-80mm", "tcp")
    rows1, rows2 = _rows_of_copy(rig, 1), _rows_of_copy(rig, 2)
    rig.sim.load_paper(rows1 + rows2 // 2)

    run = rig.service.print_receipts(rig.payment_id)

    assert [(r.copy_no, r.state) for r in run.results] == [(1, JobState.CONFIRMED), (2, JobState.FAILED)]
    assert run.results[1].reason == "paper end"
    assert [r.torn for r in rig.store.receipts] == [False, True]
    assert run.instruction is not None and run.instruction.code == "paper_end"

    rig.sim.load_paper(None)
    again = rig.service.print_receipts(rig.payment_id)

    assert [(r.copy_no, r.duplicate_no, r.state) for r in again.results] == [(2, 1, JobState.CONFIRMED)]
    last = rig.store.receipts[-1]
    assert not last.torn and "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1" in last.text_lines()
    assert _payments(rig) == 1
    with rig.sessions() as s:
        jobs = s.scalars(select(ReceiptJob).order_by(ReceiptJob.created_at, ReceiptJob.copy_no)).all()
    assert [(j.copy_no, j.duplicate_no, j.state) for j in jobs] == [
        (1, 0, "CONFIRMED"),
        (2, 0, "FAILED"),
        (2, 1, "CONFIRMED"),
    ]


def test_cover_open_between_copies_blocks_copy_2_until_closed(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig("raster-58mm", "tcp")
    rig.service.print_copy(rig.payment_id, 1)
    rig.sim.set_cover_open(True)

    run = rig.service.print_receipts(rig.payment_id)

    assert run.results[0].state is JobState.FAILED and run.results[0].reason.startswith("cover open")
    assert run.instruction is not None and run.instruction.code == "cover_open"
    rig.sim.set_cover_open(False)
    again = rig.service.print_receipts(rig.payment_id)
    assert again.complete and again.results[0].duplicate_no == 1
    assert len(rig.store.receipts) == 2


def test_reprint_of_either_copy_is_a_numbered_duplicate(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig("kz1048-80mm", "tcp")
    rig.service.print_receipts(rig.payment_id)

    first = rig.service.reprint("ERAP-2026-000123", 1)
    second = rig.service.reprint("ERAP-2026-000123", 1)
    other = rig.service.reprint("ERAP-2026-000123", 2)

    assert [r.results[0].duplicate_no for r in (first, second, other)] == [1, 2, 1]
    texts = [r.text_lines() for r in rig.store.receipts[2:]]
    assert "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1" in texts[0] and "ҚҰҚЫҚ БҰЗУШЫНЫҢ ДАНАСЫ (1/2)" in texts[0]
    assert "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 2" in texts[1]
    assert "КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1" in texts[2] and "ХАТТАМАҒА АРНАЛҒАН ДАНА (2/2)" in texts[2]
    assert _payments(rig) == 1
    # all copies carry the same verification code: they render one payment record
    codes = {decode_receipt_code(r.qr_codes()[0].rsplit("/", 1)[1]).body for r in rig.store.receipts}
    assert len(codes) == 1


@pytest.mark.parametrize("mode", MODES)
def test_terminal_time_is_printed_as_a_local_date_and_time(make_rig, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The terminal reports 0302092105 (MMDDhhmmss, its local clock, no year): the receipt reads a date."""
    rig = make_rig(mode, "tcp")
    rig.service.print_receipts(rig.payment_id)
    for receipt in rig.store.receipts:
        printed = printed_lines(rig, receipt)
        assert contains_field(rig, printed, "Терминал уақыты / Время терминала: 02.03.2026 09:21:05"), printed
        assert not contains_field(rig, printed, "Терминал уақыты / Время терминала: 0302092105")
