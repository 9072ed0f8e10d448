"""Server tables of the sync ingest: the inbox of every accepted record (the idempotency key), per-stream
sequence tracking (gaps), dead letters, conflicts, signed datasets for down-sync, and the server copies of
the record types that have no foundation table (own-card checks, receipt events, recording metadata, status).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class SyncInbox(Base):
    """Every accepted record, payload and signature stored verbatim; PK = (device, epoch, seq)."""

    __tablename__ = "sync_inbox"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    record_id: Mapped[str] = mapped_column(String(64), unique=True)
    stream: Mapped[str] = mapped_column(String(32))
    sv: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    sig: Mapped[bytes] = mapped_column(LargeBinary)
    kid: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # added by s0006: a record that came in a signed batch (v2/v3); ``sig`` is then the batch's signature.
    # Not indexed (s0008): a record finds its batch by the batch's key; nothing looks records up by batch.
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SyncBatch(Base):
    """The proof of records that came in one v2 message: the signed manifest of their sha256 digests.

    A record of the batch verifies by: sha256(payload) is in ``manifest`` and ``sig`` signs ``manifest``
    under the domain ``pd-batch-v1`` with key ``kid``. ``id`` = sha256 hex of the manifest.
    """

    __tablename__ = "sync_batch"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kid: Mapped[str] = mapped_column(String(16))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    sig: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SyncStream(Base):
    """Per device and epoch: the contiguous high-water mark, the highest seq seen, and gap bookkeeping."""

    __tablename__ = "sync_stream"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(64), primary_key=True)
    hwm: Mapped[int] = mapped_column(BigInteger, default=0)
    max_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    gap_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_resend_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resend_requests: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SyncDeadLetter(Base):
    """A message or record that was rejected, with its reason; never silently dropped.

    ``data`` keeps at most the first 64 KiB of it; ``size_bytes`` and ``sha256`` are of the whole (s0013).
    """

    __tablename__ = "sync_dead_letter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    topic: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class SyncConflict(Base):
    """An alert about a record that contradicts what is stored.

    ``kind`` (added by s0006): ``seq`` = a second, different payload for a (device, epoch, seq) already
    stored (a security alert); ``double_payment`` = a payment for a protocol that already has another
    payment (the record itself is kept in ``sync_inbox``; the business table keeps the first payment).
    """

    __tablename__ = "sync_conflict"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    epoch: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    stored_sha256: Mapped[str] = mapped_column(String(64))
    new_sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    sig: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32), default="seq", server_default="seq", index=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class SyncDataset(Base):
    """A signed dataset version for down-sync (tariffs, device configuration, unpaid fines)."""

    __tablename__ = "sync_dataset"

    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    sig: Mapped[bytes] = mapped_column(LargeBinary)
    kid: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SyncDeviceDataset(Base):
    """The dataset version a device reports it has in use."""

    __tablename__ = "sync_device_dataset"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OwnCardCheck(Base):
    __tablename__ = "sync_own_card_check"

    check_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))  # unique in sync_inbox, which feeds this table (s0010)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    protocol_number: Mapped[str] = mapped_column(String(32), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cardholder_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    driver_name: Mapped[str] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    attested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReceiptEvent(Base):
    __tablename__ = "sync_receipt_event"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    protocol_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    copy_no: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # s0019, receipt_job v2: what the device printed beyond the synced rows (None for v1)
    duplicate_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verify_code: Mapped[str | None] = mapped_column(String(400), nullable=True)
    mask_iin: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(200), nullable=True)
    software_version: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SegmentMeta(Base):
    __tablename__ = "sync_segment_meta"
    # one index for "a device's footage" and "a device's footage in a time range" (s0008)
    __table_args__ = (Index("ix_sync_segment_meta_device_started", "device_id", "started_at"),)

    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))  # unique in sync_inbox, which feeds this table (s0010)
    device_id: Mapped[str] = mapped_column(String(64))
    recording_id: Mapped[str] = mapped_column(String(64))  # not indexed (s0011): no query reads by it
    seq: Mapped[int] = mapped_column(Integer)  # the segment's number in the device's recording
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    file_name: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    prev_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    codec: Mapped[str] = mapped_column(String(32))
    uploaded: Mapped[bool] = mapped_column(Boolean, default=False)
    # s0007; segment v2: GPS at the first and last frame (null = no fix then), seconds with a fix of
    # gps_seconds started seconds (both null = not known: a v1 record or a segment repaired at start)
    start_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    start_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    gps_fix_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gps_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RecordingGap(Base):
    __tablename__ = "sync_recording_gap"

    gap_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))  # unique in sync_inbox, which feeds this table (s0010)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    recording_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(200))


class Bookmark(Base):
    __tablename__ = "sync_bookmark"

    bookmark_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))  # unique in sync_inbox, which feeds this table (s0010)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, nullable=True
    )  # s0006; None for an instant (bookmark v1)
    label: Mapped[str] = mapped_column(String(200))
    protocol_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    officer_badge: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DeviceStatus(Base):
    """The latest status per device (last writer wins by seq)."""

    __tablename__ = "sync_device_status"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime)  # the device's clock
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # the server's (s0019)
