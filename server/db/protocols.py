"""The server's copies of officers, protocols and payments, as synced from the devices."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class Officer(Base):
    __tablename__ = "officer"

    badge: Mapped[str] = mapped_column(String(32), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200), default="")


class Protocol(Base):
    __tablename__ = "protocol"
    # the search's look-ups by prefix (server.review.search): on PostgreSQL ``text_pattern_ops`` makes a
    # ``LIKE 'prefix%'`` an index range scan in any collation (s0018); the number and plate are searched upper
    # case without spaces and dashes, through expression indexes made by s0018 on PostgreSQL only
    __table_args__ = (
        Index("ix_protocol_driver_iin", "driver_iin", postgresql_ops={"driver_iin": "text_pattern_ops"}),
        Index("ix_protocol_number_upper", text("upper(number) text_pattern_ops")).ddl_if(dialect="postgresql"),
        Index(
            "ix_protocol_plate_search",
            text("upper(replace(replace(vehicle_plate, ' ', ''), '-', '')) text_pattern_ops"),
        ).ddl_if(dialect="postgresql"),
    )

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(2))
    article: Mapped[str] = mapped_column(String(32))
    article_title: Mapped[str] = mapped_column(Text, default="")
    offence_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    offence_date: Mapped[date] = mapped_column(Date)
    place: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float | None] = mapped_column(nullable=True)
    lon: Mapped[float | None] = mapped_column(nullable=True)
    driver_name: Mapped[str] = mapped_column(String(200))
    driver_iin: Mapped[str] = mapped_column(String(12))
    vehicle_plate: Mapped[str] = mapped_column(String(16))
    officer_badge: Mapped[str] = mapped_column(String(32), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    fine_units: Mapped[int] = mapped_column(Integer)
    unit_value_minor: Mapped[int] = mapped_column(Integer)
    unit_year: Mapped[int] = mapped_column(Integer)
    full_minor: Mapped[int] = mapped_column(Integer)
    reduced_minor: Mapped[int] = mapped_column(Integer)
    discount_deadline: Mapped[date] = mapped_column(Date)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    dataset_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    driver_phone: Mapped[str | None] = mapped_column(String(20), nullable=True)  # E.164, for notices
    driver_agreed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    driver_agreed_language: Mapped[str | None] = mapped_column(String(2), nullable=True)


class Payment(Base):
    __tablename__ = "payment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    protocol_number: Mapped[str] = mapped_column(String(32), unique=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    full_amount_minor: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="approved")
    card_scheme: Mapped[str] = mapped_column(String(64), default="")
    masked_pan: Mapped[str] = mapped_column(String(32), default="")
    card_expiry: Mapped[str] = mapped_column(String(4), default="")
    card_hash: Mapped[str] = mapped_column(String(64), default="")
    cardholder_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name_check: Mapped[str] = mapped_column(String(16))
    name_check_reason: Mapped[str] = mapped_column(Text, default="")
    name_check_attested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    auth_code: Mapped[str] = mapped_column(String(16), default="")
    trace_no: Mapped[str] = mapped_column(String(16), default="")
    receipt_no: Mapped[str] = mapped_column(String(16), default="")
    terminal_id: Mapped[str] = mapped_column(String(16), default="")
    terminal_time: Mapped[str] = mapped_column(String(32), default="")
    officer_badge: Mapped[str] = mapped_column(String(32))
    approved_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ProtocolNameKey(Base):
    """The driver's name of a protocol as search keys (``core.name_search.search_key``, one row per word):
    a name typed in Cyrillic or Latin letters finds its protocols through them (s0018)."""

    __tablename__ = "protocol_name_key"
    __table_args__ = (
        Index("ix_protocol_name_key_key", "key", "protocol_number", postgresql_ops={"key": "text_pattern_ops"}),
    )

    protocol_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
