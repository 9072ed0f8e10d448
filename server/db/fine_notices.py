"""What a fine's lifecycle tells people: SMS notifications (one per fine and step, and each SMS part the SMS
centre accepted), postal notices and their outcomes, the publication list, and the contact registry's
embedded default (phone numbers by person, filled by import)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime
from server.db.fines import BigId


class FineNotification(Base):
    """An SMS of one step of one fine, recorded before it is sent (``UNIQUE (fine_id, step)``).

    status: ``pending`` → ``sending`` (claimed by a sender) → ``sent`` (the SMS centre took it; its id in
    ``provider_id``) → ``delivered`` / ``undelivered`` (receipts); ``pending`` again with a later
    ``next_attempt_at`` after a refusal; ``failed`` after the last attempt; ``no_phone`` when no number is
    known; ``uncertain`` when a send was cut off after it may have reached the SMS centre (never resent).
    """

    __tablename__ = "fine_notification"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fine_id: Mapped[int] = mapped_column(ForeignKey("fine.id"))
    step: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    receipt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        UniqueConstraint("fine_id", "step", name="uq_fine_notification_step"),
        Index("ix_fine_notification_due", "status", "next_attempt_at"),
    )


class SmsPart(Base):
    """One part of a sent SMS as the SMS centre numbered it; delivery receipts are matched on ``provider_id``."""

    __tablename__ = "fine_sms_part"

    provider_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("fine_notification.id"), index=True)
    part: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # submitted | delivered | undelivered
    receipt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class SmsReceipt(Base):
    """Every delivery receipt as it came (kept even when it names no part yet: a receipt may overtake the
    record of its own submit; it is applied when the part is recorded)."""

    __tablename__ = "fine_sms_receipt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(128), index=True)
    stat: Mapped[str] = mapped_column(String(16))
    err: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)


class PostalNotice(Base):
    """A notice sent by post for one step of one fine, and its delivery outcome (API, file, or timeout)."""

    __tablename__ = "fine_postal_notice"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fine_id: Mapped[int] = mapped_column(ForeignKey("fine.id"))
    step: Mapped[str] = mapped_column(String(32))
    sent_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # sent | delivered | undelivered
    outcome_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    outcome_source: Mapped[str] = mapped_column(String(16), default="")  # api | file | timeout

    __table_args__ = (UniqueConstraint("fine_id", "step", name="uq_fine_postal_notice_step"),)


class Publication(Base):
    """A fine on the publication list (GE: publication counts as delivery after a period)."""

    __tablename__ = "fine_publication"

    fine_id: Mapped[int] = mapped_column(ForeignKey("fine.id"), primary_key=True)
    published_on: Mapped[date] = mapped_column(Date, index=True)
    deemed_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class ContactPhone(Base):
    """A person's phone number for notices, as imported from the contact registry (KZ: BMG)."""

    __tablename__ = "contact_phone"

    person_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
