"""Hand-over to the bailiff (KZ) or the enforcement bureau (GE): signed documents, one per fine and kind
(``enforcement``, or ``recall`` when the fine was paid after the hand-over), sent in batches that the
bailiff acknowledges."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime
from server.db.fines import BigId


class EnforcementBatch(Base):
    __tablename__ = "enforcement_batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(String(2))
    made_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    documents: Mapped[int] = mapped_column(Integer)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_by: Mapped[str] = mapped_column(String(200), default="")
    ack_reference: Mapped[str] = mapped_column(String(200), default="")


class EnforcementDocument(Base):
    """One signed document: ``body`` is canonical JSON, ``sig`` its Ed25519 signature (base64) by key ``kid``."""

    __tablename__ = "enforcement_document"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fine_id: Mapped[int] = mapped_column(ForeignKey("fine.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # enforcement | recall
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("enforcement_batch.id"), nullable=True, index=True
    )
    jurisdiction: Mapped[str] = mapped_column(String(2))
    made_on: Mapped[date] = mapped_column(Date)
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    sig: Mapped[str] = mapped_column(String(128))
    kid: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("fine_id", "kind", name="uq_enforcement_document_kind"),)
