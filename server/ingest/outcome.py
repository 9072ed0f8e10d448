"""What the ingest of one batch hands on and gives back: the messages it takes (``Incoming``), the records that
passed every check (``Accepted``), the acks and counts it returns (``BatchOutcome``), and the one way a message
or record is kept aside (``dead``: a ``sync_dead_letter`` row that cannot fail, whatever the message held)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from core.structured_log import log_event
from core.sync.control import AckEntry, SyncRef, topic_device
from core.sync.envelope import RecordPayload, SignedBatch, SignedRecord, sha256_hex
from core.sync.records import RecordBody
from server.db.sync import SyncDeadLetter
from server.ingest.limits import fits_device_id
from server.ingest.record_types import RecordType

log = logging.getLogger(__name__)
DEAD_LETTER_KEPT_BYTES = 64 * 1024  # of a refused message; its size and SHA-256 are of the whole
RecordKey = tuple[str, str, int]  # (device, epoch, seq): a record's place in its device's stream


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes


@dataclass
class BatchOutcome:
    acks: dict[str, list[AckEntry]] = field(default_factory=lambda: defaultdict(list))
    dataset_requests: list[tuple[str, SyncRef]] = field(default_factory=list)
    credit_asks: list[tuple[str, int]] = field(default_factory=list)  # (device, records it wants)
    marks: dict[tuple[str, str], int] = field(default_factory=dict)  # (device, epoch) -> highest seq seen
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_letters: int = 0

    def saw(self, device_id: str, epoch: str, seq: int) -> None:
        """Note that stream (``device_id``, ``epoch``) reached ``seq``; its marks are raised once, at the end of
        the batch, with every other stream's, in key order (``stream_marks.advance_streams``)."""
        key = (device_id, epoch)
        self.marks[key] = max(self.marks.get(key, 0), seq)

    def merge(self, other: BatchOutcome) -> None:
        """Add ``other`` (the outcome of further messages) to this one."""
        for device_id, entries in other.acks.items():
            self.acks[device_id].extend(entries)
        self.dataset_requests.extend(other.dataset_requests)
        self.credit_asks.extend(other.credit_asks)
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.dead_letters += other.dead_letters


@dataclass(slots=True)
class Accepted:
    """A record that passed every check: its signed bytes, header, validated body and record type."""

    device_id: str
    rec: SignedRecord  # for a batched record: the payload with the batch's signature and key id
    head: RecordPayload
    body: RecordBody
    kind: RecordType
    digest: str
    batch: SignedBatch | None = None

    @property
    def key(self) -> RecordKey:
        return (self.device_id, self.head.epoch, self.head.seq)


def dead(session: Session, out: BatchOutcome, now: datetime, topic: str, device: str | None, reason: str,
         detail: str, data: bytes) -> None:  # fmt: skip
    """Keep a refused message or record aside: its reason, and its first ``DEAD_LETTER_KEPT_BYTES`` with
    the size and SHA-256 of the whole. Every text is cut to its column and NUL-free, so this insert cannot
    fail whatever the message held."""
    session.add(
        SyncDeadLetter(
            device_id=device if device is not None and fits_device_id(device) else None,
            topic=storable(topic, 256),
            reason=storable(reason, 32),
            detail=storable(detail, 2000),
            data=data[:DEAD_LETTER_KEPT_BYTES],
            size_bytes=len(data),
            sha256=sha256_hex(data),
            received_at=now,
        )
    )
    out.dead_letters += 1
    log_event(log, "sync.dead_letter", device=device, topic=topic[:256], reason=reason, detail=detail[:300],
              size=len(data))  # fmt: skip


def dead_letter(session: Session, now: datetime, message: Incoming, reason: str, detail: str) -> None:
    """Dead-letter a whole message that could not be handled (in the caller's transaction)."""
    where = topic_device(message.topic)
    dead(session, BatchOutcome(), now, message.topic, where[0] if where else None, reason, detail,
         message.payload)  # fmt: skip


def storable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters that any text column can hold (no NUL, no lone surrogate)."""
    cut = text[:limit]
    if cut.isascii() and "\x00" not in cut:
        return cut
    return cut.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")[:limit]
