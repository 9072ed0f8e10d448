"""The durable outbox: a record to sync is written in the same transaction as the business row it describes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from edge.db.base import Base, UtcDateTime
from edge.db.meta import database_epoch


class OutboxRecord(Base):
    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}  # a sequence number is never reused

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    epoch: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(36), unique=True)
    record_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(
        String(16), default="pending", index=True
    )  # pending | acked | rejected


def canonical_json(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def enqueue(session: Session, record_type: str, body: dict[str, Any], now: datetime | None = None) -> int:
    """Queue ``body`` for sync inside the caller's transaction and return its sequence number."""
    row = OutboxRecord(
        epoch=database_epoch(session),
        record_id=str(uuid.uuid4()),
        record_type=record_type,
        body=canonical_json(body),
        created_at=now or datetime.now(UTC),
        state="pending",
    )
    session.add(row)
    session.flush()
    return row.seq
