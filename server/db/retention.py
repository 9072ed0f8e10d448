"""Tables of footage retention (``server.review.retention``): the stretches of a device's footage an event
links (a paid stop, a complaint or appeal case, an export), the legal holds cases put on footage, and one row
per retention run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class FootageLink(Base):
    """A stretch of one device's footage linked to an event: footage overlapping it is kept for its
    category's years from ``at`` (the latest time the event touched it). ``source`` names the event
    (``payment:<protocol>``, ``case:<id>``, ``export:<protocol>`` or ``export:<device>``)."""

    __tablename__ = "footage_link"
    __table_args__ = (
        UniqueConstraint("source", "device_id", "started_at", "ended_at", name="uq_footage_link_stretch"),
        Index("ix_footage_link_device", "device_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    category: Mapped[str] = mapped_column(String(16))  # server.review.retention.Category
    source: Mapped[str] = mapped_column(String(80))
    device_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    made_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FootageHold(Base):
    """A legal hold a case put on a stretch of one device's footage: nothing overlapping it is deleted
    while it is not released."""

    __tablename__ = "footage_hold"
    __table_args__ = (
        Index("ix_footage_hold_device", "device_id", "released_at"),
        Index("ix_footage_hold_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"))
    device_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    placed_by: Mapped[str] = mapped_column(String(64))
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RetentionRun(Base):
    """One retention run: the moment it judged by, what it linked and deleted, and when it finished
    (``finished_at`` None: it stopped part-way; the next run simply does the rest)."""

    __tablename__ = "retention_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    now: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dry_run: Mapped[bool] = mapped_column(default=False)
    links_made: Mapped[int] = mapped_column(Integer, default=0)
    classified: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    deleted_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    run_by: Mapped[str] = mapped_column(String(64))
    # s0024: the rules it judged by (``server.review.retention.Rules.text``); None: before they were kept
    rules: Mapped[str | None] = mapped_column(String(120), nullable=True)
