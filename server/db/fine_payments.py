"""Payments of fines from other channels (banks, egov, kiosks): the providers and their keys, every payment
they reported (idempotent by their reference), refund cases for money that settled nothing or too much, and
the reports of daily statement reconciliation."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime
from server.db.fines import BigId


class PaymentProvider(Base):
    __tablename__ = "payment_provider"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    hmac_key: Mapped[str] = mapped_column(String(128))  # base64 of the shared secret the provider signs with
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ProviderPayment(Base):
    """A payment as a provider reported it, and what it did: ``applied``, ``refund`` or ``unmatched`` (no such
    fine yet: applied if the fine appears, refunded after a while)."""

    __tablename__ = "provider_payment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(ForeignKey("payment_provider.name"))
    reference: Mapped[str] = mapped_column(String(64))
    fine_number: Mapped[str] = mapped_column(String(64), index=True)
    fine_id: Mapped[int | None] = mapped_column(ForeignKey("fine.id"), nullable=True, index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    value_date: Mapped[date] = mapped_column(Date)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    request_sha256: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(24), default="")
    due_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    applied_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint("provider", "reference", name="uq_provider_payment_reference"),
        Index("ix_provider_payment_value_date", "provider", "value_date"),
    )


class RefundCase(Base):
    """Money to give back, with why: an over- or underpayment, a second payment, a payment of no known fine."""

    __tablename__ = "refund_case"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fine_id: Mapped[int | None] = mapped_column(ForeignKey("fine.id"), nullable=True, index=True)
    provider_payment_id: Mapped[int | None] = mapped_column(ForeignKey("provider_payment.id"), nullable=True)
    device_payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reason: Mapped[str] = mapped_column(String(24))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # open | closed
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class ReconciliationReport(Base):
    __tablename__ = "reconciliation_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(ForeignKey("payment_provider.name"))
    statement_date: Mapped[date] = mapped_column(Date)
    file_name: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    matched: Mapped[int] = mapped_column(Integer)
    mismatched: Mapped[int] = mapped_column(Integer)
    missing_ours: Mapped[int] = mapped_column(Integer)
    missing_statement: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReconciliationItem(Base):
    """One line of a report that needs a look (matched lines are only counted)."""

    __tablename__ = "reconciliation_item"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_report.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # mismatched | missing_ours | missing_statement | duplicate
    reference: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
