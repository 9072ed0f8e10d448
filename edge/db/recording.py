"""Device tables of the body camera: closed segments (with upload state), recording gaps and bookmarks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime

UPLOAD_STATES = ("pending", "confirmed", "rejected")


class RecordingSegment(Base):
    """One closed segment as chained in the manifest; the local file is removed only once ``confirmed``."""

    __tablename__ = "recording_segment"
    __table_args__ = (Index("ix_recording_segment_upload", "upload_state", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    device_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    frames: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    repaired: Mapped[bool] = mapped_column(Boolean, default=False)
    entry_json: Mapped[str] = mapped_column(Text)  # the signed manifest entry, byte for byte as journaled
    file_name: Mapped[str] = mapped_column(String(64))
    upload_state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | confirmed | rejected
    uploaded_bytes: Mapped[int] = mapped_column(Integer, default=0)
    upload_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RecordingGapRow(Base):
    __tablename__ = "recording_gap"

    gap_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cause: Mapped[str] = mapped_column(String(32))
    seq_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seq_after: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Bookmark(Base):
    """A time range of the recording that another part of the app marked (a stop, a payment, a card check)."""

    __tablename__ = "recording_bookmark"
    __table_args__ = (Index("ix_recording_bookmark_range", "started_at", "ended_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
