"""The device database's epoch is made once, even when two threads ask for it first at the same moment (the
sync sender greeting the server while the status reporter queues its first record): both get the same one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.db.meta import DeviceMeta, database_epoch


def test_an_epoch_made_by_another_thread_between_look_and_insert_is_the_one_used(
    device_sessions: sessionmaker[Session],
) -> None:
    made_by_other: list[str] = []

    def other_thread_first(conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        # the race, made certain: this caller found no epoch, and before its INSERT runs, another commits one
        if statement.startswith("INSERT INTO device_meta") and not made_by_other:
            with device_sessions() as other, other.begin():
                made_by_other.append(database_epoch(other))

    with device_sessions() as session, session.begin():
        conn = session.connection()
        event.listen(conn, "before_cursor_execute", other_thread_first)
        epoch = database_epoch(session)
        event.remove(conn, "before_cursor_execute", other_thread_first)

    assert made_by_other and epoch == made_by_other[0]
    with device_sessions() as session:
        assert (
            session.scalar(select(func.count()).select_from(DeviceMeta).where(DeviceMeta.key == "epoch")) == 1
        )
        assert database_epoch(session) == epoch  # and it stays the one epoch of this database
