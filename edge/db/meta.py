"""Key-value facts about the device database itself, such as its epoch (a random id made when it was created)."""

from __future__ import annotations

import uuid

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from edge.db.base import Base


class DeviceMeta(Base):
    __tablename__ = "device_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def get_meta(session: Session, key: str) -> str | None:
    return session.scalar(select(DeviceMeta.value).where(DeviceMeta.key == key))


def database_epoch(session: Session) -> str:
    """The epoch of this database, made once; a re-created database gets a new one, so seqs never collide."""
    epoch = get_meta(session, "epoch")
    if epoch is None:
        epoch = uuid.uuid4().hex
        session.add(DeviceMeta(key="epoch", value=epoch))
        session.flush()
    return epoch
