"""Other systems that call the fines API with a key (the unpaid look-up, fine imports, postal outcomes,
bailiff acknowledgements), and the audit of every unpaid look-up (append-only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime
from server.db.fines import BigId


class ApiClient(Base):
    """A client system; its key is kept only as SHA-256. ``scopes``: space-separated, e.g. ``lookup import``."""

    __tablename__ = "api_client"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))
    per_minute: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LookupAudit(Base):
    """Who asked about whose unpaid fines, when, from where, and how many were answered."""

    __tablename__ = "lookup_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    client: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(16))
    unpaid_count: Mapped[int] = mapped_column(Integer)
    remote: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_lookup_audit_person", "person_id", "at"),)
