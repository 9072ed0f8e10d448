"""Reading the CSV files the fine lifecycle takes in (contacts, postal outcomes, provider statements): UTF-8
(a BOM allowed), a fixed header, a fixed number of fields a line, blank lines skipped. Anything else raises the
caller's error class with a message naming the line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence


def csv_lines(
    data: bytes, header: Sequence[str], error: type[ValueError], what: str, limit: int | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped fields) of every data line; ``error`` for a file that does not fit."""
    if limit is not None and len(data) > limit:
        raise error(f"{what} is {len(data)} bytes, limit {limit}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None or [h.strip() for h in first] != list(header):
        raise error(f"{what}: the first line must be '{','.join(header)}'")
    for line, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise error(f"line {line}: expected {len(header)} fields, got {len(fields)}")
        yield line, [f.strip() for f in fields]
