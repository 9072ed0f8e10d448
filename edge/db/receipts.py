"""Receipt print jobs: one row per attempt to print one copy of a payment's receipt (original or duplicate № k)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime


class JobState(enum.StrEnum):
    PENDING = "PENDING"  # row written, nothing sent yet
    SENT = "SENT"  # bytes handed to the printer; outcome not known (yet)
    CONFIRMED = "CONFIRMED"  # the printer confirmed the copy (GS ( H, or a clean status where unsupported)
    FAILED = "FAILED"  # not printed (paper end, cover open, offline, link lost, no confirmation)


class ReceiptJob(Base):
    __tablename__ = "receipt_job"
    __table_args__ = (
        UniqueConstraint("payment_id", "copy_no", "duplicate_no", name="uq_receipt_job_attempt"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payment.id"), index=True)
    protocol_number: Mapped[str] = mapped_column(String(32), index=True)
    copy_no: Mapped[int] = mapped_column(Integer)  # 1 = driver's copy, 2 = protocol copy
    duplicate_no: Mapped[int] = mapped_column(Integer)  # 0 = the original print, k >= 1 = "ДУБЛИКАТ № k"
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING.value)
    reason: Mapped[str] = mapped_column(Text, default="")
    printer_status: Mapped[str] = mapped_column(Text, default="")  # JSON of the last DLE EOT status
    bytes_sent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
