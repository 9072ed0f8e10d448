"""Rows of the officer app: sign-in sessions (the token is kept only as its SHA-256) and the Pay requests it has
taken, each under the idempotency key the page was drawn with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from edge.db.base import Base, UtcDateTime


class OfficerSession(Base):
    """A signed-in officer on the kiosk; ``locked`` after the idle time until the PIN is given again."""

    __tablename__ = "officer_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    badge: Mapped[str] = mapped_column(ForeignKey("officer.badge"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)


class PayRequest(Base):
    """One Pay request: a repeated key (double tap, retried request) finds its job instead of starting one."""

    __tablename__ = "pay_request"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    protocol_number: Mapped[str] = mapped_column(ForeignKey("protocol.number"), index=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    attempt_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    badge: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
