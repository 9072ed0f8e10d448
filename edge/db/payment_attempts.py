"""Journal of payment attempts: one row per try to pay a protocol, with its state machine and the raw 04 0F
result committed before the terminal is acknowledged (crash recovery reads it back)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime

# States. In flight (must be reconciled on start): AUTHORISING, RESULT_PERSISTED, IN_DOUBT.
STARTED = "started"
CARD_READ = "card_read"
REFUSED = "refused"  # own-card check refused; card released
CARD_FAILED = "card_failed"
AUTHORISING = "authorising"  # 06 01 sent, no result committed yet
RESULT_PERSISTED = "result_persisted"  # approved 04 0F committed, acknowledgement being sent
IN_DOUBT = "in_doubt"  # line lost: outcome unknown until reconciled
PAID = "paid"
DECLINED = "declined"
REVERSED = "reversed"  # hash mismatch, auto-reversal or reconciliation found it reversed
NOT_CHARGED = "not_charged"  # reconciliation: the terminal has no booking for it
FAILED = "failed"
NEEDS_REVIEW = "needs_review"
IN_FLIGHT = (AUTHORISING, RESULT_PERSISTED, IN_DOUBT)


class PaymentAttempt(Base):
    __tablename__ = "payment_attempt"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    protocol_number: Mapped[str] = mapped_column(ForeignKey("protocol.number"), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    officer_badge: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    masked_pan: Mapped[str] = mapped_column(String(32), default="")
    card_scheme: Mapped[str] = mapped_column(String(64), default="")
    card_expiry: Mapped[str] = mapped_column(String(4), default="")
    card_hash: Mapped[str] = mapped_column(String(64), default="")
    cardholder_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name_check: Mapped[str | None] = mapped_column(String(16), nullable=True)
    name_check_reason: Mapped[str] = mapped_column(Text, default="")
    name_check_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    name_check_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result_hex: Mapped[str | None] = mapped_column(Text, nullable=True)  # the raw 04 0F, before the ACK
    result_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trace_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    receipt_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
