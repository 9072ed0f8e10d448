"""The payment record: one approved card payment of a protocol's reduced fine (a protocol is paid once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime


class Payment(Base):
    __tablename__ = "payment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid made once on the device
    protocol_number: Mapped[str] = mapped_column(ForeignKey("protocol.number"), unique=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    full_amount_minor: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="approved")  # approved | reversed
    card_scheme: Mapped[str] = mapped_column(String(64), default="")
    masked_pan: Mapped[str] = mapped_column(String(32), default="")
    card_expiry: Mapped[str] = mapped_column(String(4), default="")  # YYMM
    card_hash: Mapped[str] = mapped_column(String(64), default="")  # ZVT TLV 1F14, hex
    cardholder_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name_check: Mapped[str] = mapped_column(String(16))  # MATCH | PROBABLE | MISMATCH | UNAVAILABLE
    name_check_reason: Mapped[str] = mapped_column(Text, default="")
    name_check_attested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    auth_code: Mapped[str] = mapped_column(String(16), default="")
    trace_no: Mapped[str] = mapped_column(String(16), default="")
    receipt_no: Mapped[str] = mapped_column(String(16), default="")
    terminal_id: Mapped[str] = mapped_column(String(16), default="")
    terminal_time: Mapped[str] = mapped_column(String(32), default="")  # as the terminal reported it
    officer_badge: Mapped[str] = mapped_column(String(32))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)
