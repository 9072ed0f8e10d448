"""Journal of payment attempts: one row per try to pay a protocol (its state machine is
``edge.payment.attempt_states``), with the raw 04 0F result committed before the terminal is acknowledged;
the evidence gathered about attempts whose result was unknown; and how each of those was settled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime


class PaymentAttempt(Base):
    __tablename__ = "payment_attempt"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    protocol_number: Mapped[str] = mapped_column(ForeignKey("protocol.number"), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)  # an AttemptState value
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
    # e0010: state changes so far (the synced record's revision); when 06 01 was sent
    revision: Mapped[int] = mapped_column(Integer, default=0)
    authorised_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    card_read_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # e0011


class PaymentEvidence(Base):
    """What the terminal said about attempts in doubt: a Repeat Receipt answer (or its refusal), a result it
    sent unsolicited, the totals of an End-of-Day. Kept whether or not it settled anything."""

    __tablename__ = "payment_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # repeat_receipt | stray_result | end_of_day
    attempt_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    summary: Mapped[str] = mapped_column(Text)
    raw_hex: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(String(16), default="")  # our answer to a stray result
    total_minor: Mapped[int | None] = mapped_column(Integer, nullable=True)  # End-of-Day
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    receipt_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    receipt_to: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PaymentSettlement(Base):
    """How an attempt in doubt was settled: once, never changed (synced as ``payment_settlement``)."""

    __tablename__ = "payment_settlement"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("payment_attempt.id"), unique=True)
    protocol_number: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # charged | not_charged
    method: Mapped[str] = mapped_column(
        String(16)
    )  # repeat_receipt | end_of_day | terminal_result | decision
    evidence: Mapped[str] = mapped_column(Text)
    evidence_hex: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    settled_at: Mapped[datetime] = mapped_column(UtcDateTime)
