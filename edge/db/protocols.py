"""Officers and protocols (the administrative-offence reports drawn up at a stop) on the device."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime


class Officer(Base):
    __tablename__ = "officer"

    badge: Mapped[str] = mapped_column(String(32), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200), default="")
    pin_hash: Mapped[str | None] = mapped_column(
        Text, nullable=True
    )  # argon2id; the PIN itself is never kept
    language: Mapped[str] = mapped_column(String(2), default="ru", server_default="ru")  # kk | ru | en
    pin_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pin_locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Protocol(Base):
    """An offence report. Its number comes from ERAP: an opaque string stored and printed verbatim."""

    __tablename__ = "protocol"
    __table_args__ = (Index("ix_protocol_officer_created", "officer_badge", "created_at"),)

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(String(2))
    article: Mapped[str] = mapped_column(String(32))
    article_title: Mapped[str] = mapped_column(Text, default="")
    offence_at: Mapped[datetime] = mapped_column(UtcDateTime)
    offence_date: Mapped[date] = mapped_column(Date)  # local calendar date, for the discount window
    place: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float | None] = mapped_column(nullable=True)  # position only, never money
    lon: Mapped[float | None] = mapped_column(nullable=True)
    driver_name: Mapped[str] = mapped_column(String(200))
    driver_iin: Mapped[str] = mapped_column(String(12))
    vehicle_plate: Mapped[str] = mapped_column(String(16))
    officer_badge: Mapped[str] = mapped_column(ForeignKey("officer.badge"))
    device_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    fine_units: Mapped[int] = mapped_column(Integer)  # sanction in MRP (KZ) or in major units (GE)
    unit_value_minor: Mapped[int] = mapped_column(Integer)  # MRP in tiyn, or 1 major unit
    unit_year: Mapped[int] = mapped_column(Integer)
    full_minor: Mapped[int] = mapped_column(Integer)
    reduced_minor: Mapped[int] = mapped_column(Integer)
    discount_deadline: Mapped[date] = mapped_column(Date)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    dataset_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | paid
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    driver_phone: Mapped[str | None] = mapped_column(String(20), nullable=True)  # E.164, for notices
    driver_agreed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    driver_agreed_language: Mapped[str | None] = mapped_column(String(2), nullable=True)
