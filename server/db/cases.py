"""Complaint and appeal cases about a protocol: the case, every change of it (append-only), and the driver's
files attached to it (kept in the video store, hashed). States and their transitions: ``server.review.cases``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class Case(Base):
    __tablename__ = "review_case"
    __table_args__ = (
        Index("ix_review_case_protocol", "protocol_number", "state"),
        Index("ix_review_case_state", "state", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    protocol_number: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # erap_appeal | written | in_person
    reference: Mapped[str] = mapped_column(String(64))  # the ERAP appeal number, letter number …
    summary: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # server.review.cases.CaseState
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # upheld | rejected | partly_upheld
    decision_text: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CaseEvent(Base):
    """One change of a case: opened, moved to a state (with the decision), a file attached. Triggers refuse
    UPDATE and DELETE (s0019)."""

    __tablename__ = "review_case_event"
    __table_args__ = (Index("ix_review_case_event_case", "case_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    by_login: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # opened | moved | file_added
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")


class CaseFile(Base):
    """A file the driver gave (photo, video, scanned letter): its type as found in its content, size, SHA-256
    and where the video store keeps it."""

    __tablename__ = "review_case_file"
    __table_args__ = (Index("ix_review_case_file_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"))
    file_name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
    added_by: Mapped[str] = mapped_column(String(64))
    # s0023: the date the store's compliance lock on the file is known to run to (None: not locked)
    store_locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
