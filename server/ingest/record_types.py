"""The one table of record types the ingest accepts: for each stream and schema version, the body model, the
server table its rows go to, where each wire field lands, the business write and the rule for a key that is
stored already. Parsing (``record_type``: unknown type or version), the column limits (``server.ingest.limits``),
the business rows (``server.ingest.business``) and the dead-letter reasons all read it.

A new record type (or version) takes: its body model in ``core.sync.records`` (and ``RECORD_MODELS``), its
table and migration, and one ``_stream(...)`` entry in ``RECORD_TYPES`` below. A field whose column has the
same name needs nothing; one stored under another name goes in ``columns``; one not kept in ``not_stored``;
one kept in another table in ``elsewhere`` (with the side row that writes it). Columns that only another
version of the stream has are written as NULL. Importing this module fails if a field has no place.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from core.sync.records import RECORD_MODELS, RecordBody, RecordRejected
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy
from server.db.protocols import Officer, Payment, Protocol
from server.db.sync import Bookmark, DeviceStatus, OwnCardCheck, ReceiptEvent, RecordingGap, SegmentMeta
from server.ingest import side_rows
from server.ingest.bulk_write import table_of

if TYPE_CHECKING:
    from server.ingest.outcome import Accepted

# A step run with the records of one stream and the rows made of them (see ``server.ingest.side_rows``)
SideRows = Callable[[Session, datetime, Sequence[tuple["Accepted", dict[str, Any]]]], None]


class Write(enum.StrEnum):
    """What a record writes besides its ``sync_inbox`` row."""

    INSERT = "insert"  # a row per record
    UPSERT = "upsert"  # a row per key; a later record of the key changes it (by ``Conflict``)
    NONE = "none"  # nothing: kept in the inbox only


class Conflict(enum.StrEnum):
    """What happens when a record's key is in its table already."""

    FIRST_WINS = "first_wins"  # the stored row stays (INSERT … ON CONFLICT DO NOTHING)
    LATER_WINS = "later_wins"  # the record later in (device, epoch, seq) order sets ``updates``
    # later_wins, but a second payment of a protocol already paid is refused: a SyncConflict "double_payment"
    ONE_PAYMENT_PER_PROTOCOL = "one_payment_per_protocol"
    HIGHER_REVISION = "higher_revision"  # a record of the same device and a higher ``revision`` replaces it
    # one row per device: a later (epoch, seq) replaces it, but a new epoch only with a later measured_at
    NEWEST_STATUS = "newest_status"


_STAMPS = ("record_id", "device_id", "received_at")  # columns the ingest fills, where a table has them


@dataclass(frozen=True, eq=False)
class RecordType:
    """One stream at one schema version. ``columns`` maps a wire field to its column where the names differ;
    ``not_stored`` fields are dropped; ``elsewhere`` names the other columns a field lands in (for limits);
    ``updates`` are the columns a later record may change; ``first``/``then`` write side rows before this
    stream's rows, and after all the batch's rows. ``whole_body``: the body is kept as JSON text."""

    stream: str
    version: int
    model: type[RecordBody]
    table: Table | None
    write: Write
    conflict: Conflict
    columns: Mapping[str, str] = field(default_factory=dict)
    not_stored: frozenset[str] = frozenset()
    elsewhere: Mapping[str, tuple[tuple[Table, str], ...]] = field(default_factory=dict)
    updates: tuple[str, ...] = ()
    first: tuple[SideRows, ...] = ()
    then: tuple[SideRows, ...] = ()
    whole_body: bool = False
    # worked out from the above (``_derive``)
    key: str = ""  # the table's primary key column
    renames: tuple[tuple[str, str], ...] = ()
    drops: tuple[str, ...] = ()
    fill: tuple[str, ...] = ()  # columns of other versions this one has no field for: NULL
    stamps: tuple[str, ...] = ()

    def row(self, a: Accepted, now: datetime) -> dict[str, Any]:
        """The row of ``a`` for ``table``: its fields under their column names, with the ingest's stamps."""
        b = dict(a.body.__dict__)  # the validated fields (bodies are flat); cheaper than model_dump
        for wire, column in self.renames:
            b[column] = b.pop(wire)
        for name in self.drops:
            del b[name]
        for name in self.fill:
            b[name] = None
        for name in self.stamps:
            b[name] = a.head.id if name == "record_id" else a.device_id if name == "device_id" else now
        return b


def _t(model: type[Any]) -> Table:
    return table_of(model)


def _stream(
    stream: str, table: Table | None, write: Write, conflict: Conflict, **rest: Any
) -> list[RecordType]:
    """The entries of every version of ``stream`` in ``RECORD_MODELS``, with what they share."""
    versions = sorted(v for s, v in RECORD_MODELS if s == stream)
    if not versions:
        raise KeyError(f"no model of record type {stream!r} in core.sync.records.RECORD_MODELS")
    made = [
        RecordType(stream, v, RECORD_MODELS[(stream, v)], table, write, conflict, **rest) for v in versions
    ]
    columns_of = {e.version: _landing_columns(e) for e in made}
    every = set().union(*columns_of.values())
    return [_derive(e, every - columns_of[e.version]) for e in made]


def _landing_columns(e: RecordType) -> set[str]:
    """The columns of ``e.table`` that ``e``'s fields land in; ``KeyError`` for a field with no place."""
    if e.table is None or e.whole_body:
        return set()
    found = set()
    for name in e.model.model_fields:
        column = e.columns.get(name, name)
        if name in e.not_stored:
            continue
        if column in e.table.c:
            found.add(column)
        elif name not in e.elsewhere:
            raise KeyError(f"{e.stream} v{e.version}: field {name!r} has no column in {e.table.name}")
    return found


def _derive(e: RecordType, fill: set[str]) -> RecordType:
    if e.table is None or e.whole_body:
        return e
    table = e.table
    landing = _landing_columns(e)
    renames = tuple((w, c) for w, c in e.columns.items() if w in e.model.model_fields)
    drops = tuple(n for n in e.model.model_fields if n in e.not_stored or e.columns.get(n, n) not in table.c)
    key = next(iter(table.primary_key.columns)).name
    stamps = tuple(s for s in _STAMPS if s in table.c and s not in landing)
    return RecordType(**{**e.__dict__, "key": key, "renames": renames, "drops": drops,
                         "fill": tuple(sorted(fill)), "stamps": stamps})  # fmt: skip


_PROTOCOL_UPDATES = ("status", "driver_phone", "driver_agreed_at", "driver_agreed_language")

RECORD_TYPES: dict[tuple[str, int], RecordType] = {
    (e.stream, e.version): e
    for e in [
        *_stream(
            "protocol", _t(Protocol), Write.UPSERT, Conflict.LATER_WINS, updates=_PROTOCOL_UPDATES,
            elsewhere={"officer_name": ((_t(Officer), "full_name"),), "officer_badge": ((_t(Officer), "badge"),)},
            first=(side_rows.officers,), then=(side_rows.driver_name_keys, side_rows.fines),
        ),
        *_stream("payment", _t(Payment), Write.UPSERT, Conflict.ONE_PAYMENT_PER_PROTOCOL, updates=("status",)),
        *_stream("own_card_check", _t(OwnCardCheck), Write.INSERT, Conflict.FIRST_WINS),
        *_stream("receipt_job", _t(ReceiptEvent), Write.INSERT, Conflict.FIRST_WINS),
        *_stream(
            "segment", _t(SegmentMeta), Write.INSERT, Conflict.FIRST_WINS,
            not_stored=frozenset({"width", "height", "fps"}),
        ),
        *_stream("recording_gap", _t(RecordingGap), Write.INSERT, Conflict.FIRST_WINS),
        *_stream("bookmark", _t(Bookmark), Write.INSERT, Conflict.FIRST_WINS),
        *_stream("payment_attempt", _t(PaymentAttemptCopy), Write.UPSERT, Conflict.HIGHER_REVISION),
        *_stream("payment_settlement", _t(PaymentSettlementCopy), Write.INSERT, Conflict.FIRST_WINS),
        *_stream("device_status", _t(DeviceStatus), Write.UPSERT, Conflict.NEWEST_STATUS, whole_body=True),
    ]
}  # fmt: skip
STREAM_ORDER = tuple(dict.fromkeys(s for s, _v in RECORD_TYPES))  # business rows are written in this order


def record_type(stream: str, version: int) -> RecordType:
    """The entry of ``stream`` at ``version``; ``RecordRejected`` (``unknown_type``, ``unknown_version``)."""
    found = RECORD_TYPES.get((stream, version))
    if found is not None:
        return found
    known = sorted(v for s, v in RECORD_TYPES if s == stream)
    if not known:
        raise RecordRejected("unknown_type", f"record type {stream!r} not in {sorted(STREAM_ORDER)}")
    raise RecordRejected("unknown_version", f"{stream} version {version!r} unknown; known {known}")
