"""The server's copies of the devices' payment attempts (the latest state of each, declined and aborted ones
included) and of how attempts in doubt were settled (append-only: a settlement is evidence)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class PaymentAttemptCopy(Base):
    """One row per attempt, replaced by a record of a higher ``revision`` from the same device (s0014)."""

    __tablename__ = "sync_payment_attempt"

    attempt_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))  # the inbox record this state came from
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    protocol_number: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(24))
    revision: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    officer_badge: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    masked_pan: Mapped[str] = mapped_column(String(32), default="")
    card_scheme: Mapped[str] = mapped_column(String(64), default="")
    name_check: Mapped[str | None] = mapped_column(String(16), nullable=True)
    result_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result_text: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    trace_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    receipt_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # s0019, payment_attempt v2: when the card was read and the authorisation (PIN) began; None for v1
    card_read_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    authorising_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class PaymentSettlementCopy(Base):
    """How an attempt in doubt was settled, on what evidence, by whom and why. Triggers refuse UPDATE and
    DELETE (s0014)."""

    __tablename__ = "sync_payment_settlement"

    settlement_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt_id: Mapped[str] = mapped_column(String(64), index=True)
    protocol_number: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[str] = mapped_column(Text)
    evidence_hex: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    payment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
