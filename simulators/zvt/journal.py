"""The simulated terminal's own journal of charges, so tests can count bookings and reversals independently."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Charge:
    trace: int
    receipt_no: int
    amount_minor: int
    currency: int
    card_hash: str
    status: str  # pending | booked | auto_reversed | reversed_by_ecr | reversed | declined
    status_info: str  # hex of the 04 0F sent for it
    reversal_info: str = ""
    card_type: int = 0  # ZVT card type (BMP 8A): its group in the End-of-Day totals
    batch: int = 0  # 0 = the open batch; End-of-Day numbers the batch it closes


class ChargeJournal:
    """Thread-safe list of charges; optionally mirrored to a JSON file for tests in other processes."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._items: list[Charge] = []
        if path is not None and path.exists():
            self._items = [Charge(**d) for d in json.loads(path.read_text())]

    def _save(self) -> None:
        if self._path is not None:
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps([asdict(c) for c in self._items]))
            tmp.replace(self._path)

    def add(self, charge: Charge) -> None:
        with self._lock:
            self._items.append(charge)
            self._save()

    def set_status(self, charge: Charge, status: str, reversal_info: str = "") -> None:
        with self._lock:
            charge.status = status
            if reversal_info:
                charge.reversal_info = reversal_info
            self._save()

    def all(self) -> list[Charge]:
        with self._lock:
            return list(self._items)

    def booked(self) -> list[Charge]:
        return [c for c in self.all() if c.status == "booked"]

    def by_receipt(self, receipt_no: int) -> Charge | None:
        for c in self.all():
            if c.receipt_no == receipt_no:
                return c
        return None

    def close_batch(self) -> list[Charge]:
        """End-of-Day: the charges of the open batch, now numbered as the next closed batch."""
        with self._lock:
            number = max((c.batch for c in self._items), default=0) + 1
            batch = [c for c in self._items if c.batch == 0]
            for c in batch:
                c.batch = number
            self._save()
            return batch

    def last(self) -> Charge | None:
        items = [c for c in self.all() if c.status != "declined"]
        return items[-1] if items else None
