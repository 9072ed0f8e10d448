"""The ``unpaid_fines`` dataset the server sends down to the devices: per person only the number of unpaid
fines, the total due and the date of the oldest, for the roadside check offline.

Binary, so that a whole country fits the signed dataset path (64 MiB) and a device can search it without
unpacking it into objects: zlib of a 16-byte header and fixed 15-byte records sorted by person::

    header  "PKUF" | version u8 = 1 | id_digits u8 | record_size u8 = 15 | 0 | currency 3 ASCII | 0 | count u32
    record  person u40 | count u16 | total_minor u48 | oldest u16 (days since 2000-01-01)   (big-endian)

About 8 bytes a person after compression (15 before): 64 MiB holds some 8 million people with unpaid fines.
``UnpaidList.parse`` refuses anything malformed with ``UnpaidListError`` (also a decompression bomb: the output
is bounded by the count the header may claim); ``lookup`` is a binary search over the records.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

MAGIC = b"PKUF"
VERSION = 1
RECORD_SIZE = 15
HEADER = struct.Struct(">4sBBBB3sBI")
EPOCH = date(2000, 1, 1)
MAX_PEOPLE = 10_000_000
MAX_TOTAL = (1 << 48) - 1


class UnpaidListError(ValueError):
    """Content that is not a valid unpaid-fines list; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class UnpaidEntry:
    person_id: str
    count: int
    total_minor: int
    oldest: date


def encode_unpaid(entries: Iterable[UnpaidEntry], currency: str, id_digits: int = 12) -> bytes:
    """The dataset content for ``entries`` (any order; one entry per person)."""
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise ValueError(f"currency {currency!r}: a three-letter code")
    if not 1 <= id_digits <= 12:
        raise ValueError(f"id_digits {id_digits}: 1..12")
    rows = sorted(entries, key=lambda e: e.person_id)
    if len(rows) > MAX_PEOPLE:
        raise ValueError(f"{len(rows)} people, limit {MAX_PEOPLE}")
    body = bytearray()
    previous = None
    for e in rows:
        if len(e.person_id) != id_digits or not e.person_id.isdigit() or not e.person_id.isascii():
            raise ValueError(f"person {e.person_id!r}: {id_digits} digits expected")
        if e.person_id == previous:
            raise ValueError(f"person {e.person_id} is listed twice")
        previous = e.person_id
        if not 1 <= e.count <= 0xFFFF or not 0 <= e.total_minor <= MAX_TOTAL:
            raise ValueError(f"person {e.person_id}: count {e.count} or total {e.total_minor} out of range")
        days = (e.oldest - EPOCH).days
        if not 0 <= days <= 0xFFFF:
            raise ValueError(f"person {e.person_id}: oldest date {e.oldest} out of range")
        body += int(e.person_id).to_bytes(5, "big") + e.count.to_bytes(2, "big")
        body += e.total_minor.to_bytes(6, "big") + days.to_bytes(2, "big")
    head = HEADER.pack(
        MAGIC, VERSION, id_digits, RECORD_SIZE, 0, currency.upper().encode("ascii"), 0, len(rows)
    )
    return zlib.compress(bytes(head) + bytes(body), 6)


class UnpaidList:
    """A parsed list: ``lookup(person)`` answers without building an object per person."""

    def __init__(self, records: bytes, count: int, currency: str, id_digits: int) -> None:
        self._records, self.count, self.currency, self.id_digits = (
            memoryview(records),
            count,
            currency,
            id_digits,
        )

    @classmethod
    def parse(cls, content: bytes) -> UnpaidList:
        d = zlib.decompressobj()
        try:
            head = d.decompress(content, HEADER.size)
            if len(head) < HEADER.size:
                raise UnpaidListError("shorter than its header")
            magic, version, id_digits, size, _r1, cur, _r2, count = HEADER.unpack(head)
            if magic != MAGIC or version != VERSION or size != RECORD_SIZE:
                raise UnpaidListError(
                    f"not an unpaid-fines list v{VERSION} ({magic!r} v{version}, records of {size})"
                )
            if not 1 <= id_digits <= 12 or count > MAX_PEOPLE or not cur.isalpha():
                raise UnpaidListError(
                    f"header out of range: {id_digits} digits, {count} people, currency {cur!r}"
                )
            want = count * RECORD_SIZE
            body = d.decompress(d.unconsumed_tail, want + 1) if want else d.decompress(d.unconsumed_tail, 1)
            if len(body) != want or d.unconsumed_tail or not d.eof:
                raise UnpaidListError(f"{count} records announced, {len(body)} bytes of records found")
        except zlib.error as exc:
            raise UnpaidListError(f"not zlib data: {exc}") from None
        return cls(body, count, cur.decode("ascii"), id_digits)

    def _person(self, index: int) -> int:
        at = index * RECORD_SIZE
        return int.from_bytes(self._records[at : at + 5], "big")

    def _entry(self, index: int) -> UnpaidEntry:
        at = index * RECORD_SIZE
        r = self._records[at : at + RECORD_SIZE]
        return UnpaidEntry(
            str(int.from_bytes(r[0:5], "big")).zfill(self.id_digits),
            int.from_bytes(r[5:7], "big"),
            int.from_bytes(r[7:13], "big"),
            EPOCH + timedelta(days=int.from_bytes(r[13:15], "big")),
        )

    def lookup(self, person_id: str) -> UnpaidEntry | None:
        """The entry of ``person_id``, or None when the person has no unpaid fine (or the id is malformed)."""
        if len(person_id) != self.id_digits or not person_id.isascii() or not person_id.isdigit():
            return None
        key = int(person_id)
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._person(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return self._entry(lo) if lo < self.count and self._person(lo) == key else None

    def __iter__(self) -> Iterator[UnpaidEntry]:
        return (self._entry(i) for i in range(self.count))
