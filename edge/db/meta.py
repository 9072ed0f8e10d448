"""Key-value facts about the device database itself, such as its epoch (a random id made when it was created)."""

from __future__ import annotations

import uuid

from sqlalchemy import String, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from edge.db.base import Base


class DeviceMeta(Base):
    __tablename__ = "device_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def get_meta(session: Session, key: str) -> str | None:
    return session.scalar(select(DeviceMeta.value).where(DeviceMeta.key == key))


def database_epoch(session: Session) -> str:
    """The epoch of this database, made once; a re-created database gets a new one, so seqs never collide.

    Several threads may ask first at once (the sync sender greeting the server while the status reporter
    queues its first record): the first writer's epoch wins, and every caller reads that one back.
    """
    epoch = get_meta(session, "epoch")
    if epoch is None:
        session.execute(
            sqlite_insert(DeviceMeta).values(key="epoch", value=uuid.uuid4().hex).on_conflict_do_nothing()
        )
        epoch = session.execute(select(DeviceMeta.value).where(DeviceMeta.key == "epoch")).scalar_one()
    return epoch
