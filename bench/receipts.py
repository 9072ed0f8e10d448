"""Bytes on the wire and serial line time for the pair of receipts (copy 1 + copy 2) in each printer text mode.

Line time = bytes x 10 bits (8N1) / baud. Target: the pair in KZ-1048 text mode within 1.5 s at 115200 baud.
Baseline (measured in the same run): the same pair in raster text mode on the same 80 mm printer; the ratio says
how many times more line time raster mode costs. Last line: one JSON object.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from core.money import KZT, Money
from core.receipt_code import encode_receipt_code, receipt_url
from core.receipt_layout import CopySpec, ReceiptData, render_copy
from core.signing import new_private_key
from hardware.printer.encoder import JobEncoder
from hardware.printer.profiles import PROFILES

TARGET_S = 1.5
BAUDS = (9600, 115200)

DATA = ReceiptData(
    unit="ДПС УП г. Астана",
    protocol_number="ERAP-2026-000123",
    offence_at=datetime(2026, 3, 2, 4, 15, tzinfo=UTC),
    place="Астана, пр. Қабанбай батыр 53",
    article="592 ч.1",
    article_title="Превышение скорости на 10-20 км/ч / Жылдамдықты асыру",
    fine_units=5,
    unit_value=Money(432500, KZT),
    unit_year=2026,
    full_amount=Money(2162500, KZT),
    legal_basis="50% ст. 810 КоАП РК",
    amount_paid=Money(1081250, KZT),
    driver_name="Жұмабаев Нұрлан Өмірұлы",
    driver_iin="850101300124",
    vehicle_plate="123ABC01",
    officer_name="Серікбаев Әділет Қайратұлы",
    officer_badge="KZ-7781",
    device_id="DEV-0001",
    card_scheme="VISA",
    masked_pan="427655******1234",
    cardholder_name="NURLAN ZHUMABAYEV",
    name_check="MATCH",
    auth_code="A1B2C3",
    receipt_no="0017",
    trace_no="000042",
    terminal_id="52500041",
    terminal_time="2026-03-02 09:21:05",
    approved_at=datetime(2026, 3, 2, 4, 21, 5, tzinfo=UTC),
)


def pair_bytes(profile_name: str) -> tuple[int, float, int, int]:
    """(bytes of copy 1 + copy 2 with GS ( H markers, encode seconds, text lines, raster lines)."""
    code = encode_receipt_code(DATA.claim(), new_private_key())
    url = receipt_url("https://pk.police.kz", code)
    encoder = JobEncoder(PROFILES[profile_name])
    encoder.encode(
        render_copy(DATA, CopySpec(1, 0, DATA.approved_at, True, url, "Asia/Almaty", "v"))
    )  # warm up
    encoder.text_lines = encoder.raster_lines = 0
    start = time.perf_counter()
    total = 0
    for copy_no in (1, 2):
        spec = CopySpec(copy_no, 0, DATA.approved_at, copy_no == 1, url, "Asia/Almaty", "patrolkit 0.1.0")
        total += len(encoder.encode(render_copy(DATA, spec), b"0001"))
    return total, time.perf_counter() - start, encoder.text_lines, encoder.raster_lines


def line_time(n_bytes: int, baud: int) -> float:
    return n_bytes * 10 / baud


def main() -> None:
    results: dict[str, int] = {}
    print(
        f"{'profile':<16} {'mode':<16} {'bytes':>8} {'9600 s':>8} {'115200 s':>9} {'encode ms':>10} text/raster"
    )
    for name, profile in PROFILES.items():
        n, enc_s, text_lines, raster_lines = pair_bytes(name)
        results[name] = n
        print(
            f"{name:<16} {profile.text_mode.value:<16} {n:>8} {line_time(n, 9600):>8.2f} "
            f"{line_time(n, 115200):>9.3f} {enc_s * 1000:>10.1f} {text_lines}/{raster_lines}"
        )
    value = line_time(results["kz1048-80mm"], 115200)
    baseline = line_time(results["raster-80mm"], 115200)
    print(
        f"raster mode costs {baseline / value:.1f}x the line time of KZ-1048 text mode (80 mm, same receipts)"
    )
    print(
        json.dumps(
            {
                "bench": "receipts_pair_line_time_115200_kz1048",
                "value": round(value, 4),
                "unit": "s",
                "baseline": round(baseline, 4),
                "ratio": round(baseline / value, 2),
                "target": TARGET_S,
                "pass": value <= TARGET_S,
            }
        )
    )


if __name__ == "__main__":
    main()
