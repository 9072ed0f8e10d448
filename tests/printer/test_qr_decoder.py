"""The printer simulator reads back raster QR codes (the receipts' verification links) reliably: a missed read
would make a good receipt look like one without a QR code."""

from __future__ import annotations

import base64
import random

import pytest
import qrcode
from qrcode.constants import ERROR_CORRECT_M

from simulators.printer.virtual_printer import decode_qr


@pytest.mark.parametrize("module", [3, 6])
def test_every_receipt_link_drawn_as_a_raster_qr_reads_back_exactly(module: int) -> None:
    rng = random.Random(module)
    for _ in range(80):  # OpenCV's classic detector alone misses about 1 in 16 of these
        link = "http://127.0.0.1:8080/r/" + base64.urlsafe_b64encode(rng.randbytes(110)).decode().rstrip("=")
        code = qrcode.QRCode(box_size=module, border=4, error_correction=ERROR_CORRECT_M)
        code.add_data(link)
        code.make(fit=True)
        assert decode_qr(code.make_image().get_image().convert("1")) == link
