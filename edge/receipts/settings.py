"""Receipt options (the `[receipts]` section of the device configuration)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReceiptSettings:
    verify_base_url: str = "http://127.0.0.1:8000"  # the server's public URL; the QR points at <url>/r/<code>
    timezone: str = "Asia/Almaty"  # times on the receipt are local
    mask_iin_driver_copy: bool = True  # 8501******24 on copy 1
    mask_iin_protocol_copy: bool = False
    copy_order: tuple[int, ...] = (1, 2)  # the driver's copy first: he leaves with it
    software_version: str = "patrolkit 0.1.0"

    def __post_init__(self) -> None:
        if sorted(self.copy_order) != [1, 2]:
            raise ValueError("copy_order must name copies 1 and 2 once each")
