"""The limits a record or request must meet before anything of it is stored: each field against the column
that will hold it, with the bounds read from the column types (``server.db.column_bounds``). A value beyond
them is refused with reason ``out_of_range`` naming the field, never truncated and never left to the database
(where it would fail the whole batch's transaction).

Where each field of a record lands is read from the table of record types (``server.ingest.record_types``);
a record type missing there is refused whole, and a field with no place fails that module's import. The
checks of each record type are worked out once: a field whose model already bounds it within its column
(``max_length``, ``le``, a ``Literal`` of short strings) costs nothing per record.
"""

from __future__ import annotations

import functools
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from pydantic.fields import FieldInfo
from sqlalchemy import Table

from core.sync.envelope import RecordPayload
from core.sync.records import RecordBody
from server.db.column_bounds import ColumnBound, table_bounds, too_big
from server.db.sync import SyncDeviceDataset, SyncInbox, SyncStream
from server.ingest.record_types import RECORD_TYPES, RecordType


def _t(model: type[Any]) -> Table:
    return typing.cast(Table, model.__table__)


# The record header's fields and the sync_inbox columns that hold them
_HEAD_COLUMNS = (("dev", "device_id"), ("epoch", "epoch"), ("seq", "seq"), ("id", "record_id"),
                 ("stream", "stream"), ("sv", "sv"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Check:
    field: str
    where: str  # table.column, for the reason
    bound: ColumnBound


def head_problem(head: RecordPayload) -> str | None:
    """Why the record header does not fit ``sync_inbox`` (its epoch, seq, id, …), or None."""
    return None if _head_fits()(head) else _first_problem(_head_checks(), head)


@functools.cache
def _head_fits() -> Callable[[RecordPayload], bool]:
    """The common case in one expression (``parse_payload`` made the types exact): limits of sync_inbox."""
    b = table_bounds(_t(SyncInbox))
    if {c for _f, c in _HEAD_COLUMNS} != {"device_id", "epoch", "record_id", "stream", "seq", "sv"}:
        raise AssertionError("_HEAD_COLUMNS changed: change _head_fits with it")
    dev, epoch, rid, stream = (b[c].max_chars for c in ("device_id", "epoch", "record_id", "stream"))
    seq, sv = b["seq"], b["sv"]

    def fits(h: RecordPayload) -> bool:
        return (
            len(h.dev) <= dev and len(h.epoch) <= epoch and len(h.id) <= rid and len(h.stream) <= stream  # type: ignore[operator]
            and seq.low <= h.seq <= seq.high and sv.low <= h.sv <= sv.high  # type: ignore[operator]
        )  # fmt: skip

    return fits


@functools.cache
def _head_checks() -> _Checks:
    bounds = table_bounds(_t(SyncInbox))
    return _Checks(
        tuple(_Check(name, f"sync_inbox.{column}", bounds[column]) for name, column in _HEAD_COLUMNS)
    )


def body_problem(stream: str, body: RecordBody) -> str | None:
    """Why a validated body does not fit the columns it goes to, or None."""
    kind = RECORD_TYPES.get((stream, body.version))
    if kind is None:
        return f"no column limits are known for record type {stream!r}, so it cannot be stored"
    return _first_problem(body_checks(kind), body)


class _Checks:
    """Checks of several fields of one kind of object, ready for the ingest's hot path: the values are read
    with one ``attrgetter`` and compared with plain tuples of limits."""

    def __init__(self, checks: tuple[_Check, ...]) -> None:
        self.checks = checks
        names = [c.field for c in checks]
        getter = operator.attrgetter(*names) if names else None
        self.values = (lambda obj: (getter(obj),)) if len(names) == 1 else getter  # type: ignore[misc]
        self.limits = tuple((c.bound.max_chars, c.bound.low, c.bound.high) for c in checks)


def _first_problem(checks: _Checks, obj: object) -> str | None:
    """The first field of ``obj`` beyond its column, named (None and other types are left to the models)."""
    if checks.values is None:
        return None
    for value, (chars, low, high) in zip(checks.values(obj), checks.limits, strict=True):
        kind = type(value)
        if kind is str:
            if chars is None or len(value) <= chars:
                continue
        elif kind is not int or low is None or low <= value <= high:
            continue
        for check in checks.checks:  # the rare case: find and name it
            why = too_big(check.bound, getattr(obj, check.field))
            if why is not None:
                return f"{check.field} ({check.where}): {why}"
    return None


@functools.cache
def body_checks(kind: RecordType) -> _Checks:
    """The per-record checks of ``kind`` (only the fields its model's own constraints do not already keep
    within their columns)."""
    checks: list[_Check] = []
    home = kind.table
    if home is None or kind.whole_body:
        return _Checks(())
    for name, info in kind.model.model_fields.items():
        if name in kind.not_stored:
            continue
        places = kind.elsewhere.get(name, ())
        column = kind.columns.get(name, name)
        if column in home.c:
            places = ((home, column), *places)
        for table, col in places:
            bound = table_bounds(table).get(col)
            if bound is not None and not _model_keeps_within(info, bound):
                checks.append(_Check(name, f"{table.name}.{col}", bound))
    return _Checks(tuple(checks))


def _model_keeps_within(info: FieldInfo, bound: ColumnBound) -> bool:
    """True if the model's own constraints already keep every valid value of the field within ``bound``."""
    if bound.max_chars is not None:
        literal = _literal_values(info.annotation)
        if literal is not None:
            return all(not isinstance(v, str) or len(v) <= bound.max_chars for v in literal)
        longest = min((m.max_length for m in info.metadata if isinstance(m, MaxLen)), default=None)
        patterns = [m.pattern for m in info.metadata if isinstance(getattr(m, "pattern", None), str)]
        longest = min([n for n in (longest, *map(_longest_match, patterns)) if n is not None], default=None)
        return longest is not None and longest <= bound.max_chars
    # a value > gt is >= gt, and < lt is <= lt: bounds taken as inclusive (never too lenient)
    lows: list[Any] = [m.ge if isinstance(m, Ge) else m.gt for m in info.metadata if isinstance(m, Ge | Gt)]
    highs: list[Any] = [m.le if isinstance(m, Le) else m.lt for m in info.metadata if isinstance(m, Le | Lt)]
    if not lows or not highs or bound.low is None or bound.high is None:
        return False
    return bool(bound.low <= max(lows) and min(highs) <= bound.high)


def _longest_match(pattern: str) -> int | None:
    """The longest string an anchored ``pattern`` can match (``^[0-9a-f]{64}$``: 64), or None if unknown."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    try:
        from re import _parser  # type: ignore[attr-defined]

        longest = _parser.parse(pattern).getwidth()[1]
    except Exception:  # another Python's regex internals: the field is checked per record instead
        return None
    return int(longest) if longest < 2**31 else None


def _literal_values(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal[...]`` (or ``Literal[...] | None``) annotation, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    args = typing.get_args(annotation)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and typing.get_origin(rest[0]) is typing.Literal:
            return typing.get_args(rest[0])
    return None


def values_problem(table: Table, values: Mapping[str, Any]) -> str | None:
    """Why one of ``values`` (column name -> value) does not fit its column of ``table``, or None."""
    bounds = table_bounds(table)
    for column, value in values.items():
        bound = bounds.get(column)
        why = too_big(bound, value) if bound is not None else None
        if why is not None:
            return f"{column} ({table.name}.{column}): {why}"
    return None


def text_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be stored in any text column (PostgreSQL holds no NUL; UTF-8 no lone surrogate)."""
    if "\x00" in value:
        return f"{name}: holds a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name}: holds a lone surrogate"
    return None


def hello_problem(epoch: str, max_seq: int) -> str | None:
    """Why a device's hello (its epoch and highest seq) does not fit ``sync_stream``, or None."""
    return text_problem("epoch", epoch) or values_problem(_t(SyncStream), {"epoch": epoch, "max_seq": max_seq})


def dataset_in_use_problem(dataset: str, version: int) -> str | None:
    """Why a device's ``ref_applied`` does not fit ``sync_device_dataset``, or None."""
    return text_problem("dataset", dataset) or values_problem(
        _t(SyncDeviceDataset), {"dataset": dataset, "version": version}
    )


def fits_device_id(device_id: str) -> bool:
    """True if ``device_id`` fits the columns that hold device ids (``sync_inbox.device_id``)."""
    return too_big(table_bounds(_t(SyncInbox))["device_id"], device_id) is None
