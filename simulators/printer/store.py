"""Keeps what the virtual printer printed: in memory for tests, and as .txt/.png/.bin files for the demo."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from core.structured_log import log_event
from hardware.printer.profiles import PrinterProfile
from simulators.printer.receipt import PrintedReceipt
from simulators.printer.render import render_png, render_text

log = logging.getLogger(__name__)


class ReceiptStore:
    """Receipts in printing order; with ``directory`` each is also written as receipt-NNNN.{txt,png,bin}."""

    def __init__(self, profile: PrinterProfile, directory: Path | None = None) -> None:
        self.profile = profile
        self.directory = directory
        self.receipts: list[PrintedReceipt] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def add(self, receipt: PrintedReceipt) -> None:
        with self._lock:
            self.receipts.append(receipt)
            self._changed.notify_all()
        if self.directory is not None:
            stem = self.directory / f"receipt-{receipt.number:04d}"
            stem.with_suffix(".txt").write_text(render_text(receipt, self.profile), encoding="utf-8")
            render_png(receipt, self.profile).save(stem.with_suffix(".png"))
            stem.with_suffix(".bin").write_bytes(bytes(receipt.raw))
            meta = {"number": receipt.number, "torn": receipt.torn, "rows": receipt.rows}
            stem.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
        log_event(log, "printer_sim.receipt", number=receipt.number, torn=receipt.torn, rows=receipt.rows)

    def wait_for(self, count: int, timeout: float) -> list[PrintedReceipt]:
        """Block until at least ``count`` receipts exist (or ``timeout`` real seconds pass); return them all."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.receipts) >= count, timeout)
            return list(self.receipts)

    def files(self) -> list[Path]:
        if self.directory is None:
            return []
        return sorted(self.directory.glob("receipt-*.png"))
