"""Server tables of the video store: one row per uploaded (or uploading) segment with its manifest entry, its
layout (for playlists), latest verification and retention (its category, until when it is kept, and once the
retention run deleted its object, the row stays as a tombstone with when and why); and every verification of
a stored segment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class VideoSegment(Base):
    __tablename__ = "video_segment"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_video_segment_device_seq"),
        Index("ix_video_segment_checked", "state", "checked_at"),
        Index("ix_video_segment_retention", "state", "retain_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    frames: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    entry_json: Mapped[str] = mapped_column(Text)  # the signed manifest entry as received
    kid: Mapped[str] = mapped_column(String(128), default="")
    repaired: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="uploading")  # uploading | stored | deleted
    linked_prev: Mapped[bool] = mapped_column(Boolean, default=False)  # predecessor present and chained
    storage_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stored_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # s0018: byte ranges of the stored object (server.video.fmp4), made when first needed
    layout_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # latest verification
    check_verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # intact | broken | incomplete
    # s0022: retention (server.review.retention); set by the retention run, None until its first look
    retention_category: Mapped[str | None] = mapped_column(String(16), nullable=True)
    retain_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # the tombstone's time
    deleted_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # s0023: what the store's Object Lock is known to hold (server.review.object_locks), set only once the
    # store did it: the compliance lock's date the retention run extended it to, and the legal hold
    store_locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    store_legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SegmentVerification(Base):
    """One verification of a stored segment (s0018): the object's SHA-256, the manifest chain and the device's
    signature, with the verdict and its reasons (one per line); ``checked_by`` is a login or ``background``."""

    __tablename__ = "segment_verification"
    __table_args__ = (Index("ix_segment_verification_segment", "device_id", "seq", "checked_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    verdict: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[str] = mapped_column(Text)
    checked_by: Mapped[str] = mapped_column(String(64))
    sha256_found: Mapped[str | None] = mapped_column(String(64), nullable=True)
