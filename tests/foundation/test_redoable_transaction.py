"""``redoable_transaction``: the sync sender's bookkeeping commits without waiting for the disk, and the
connection goes back to the pool with ``synchronous=FULL`` so business rows stay durable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from edge.db.base import make_engine, make_sessionmaker, redoable_transaction, transaction

FULL, NORMAL = 2, 1


def _setup(tmp_path: Path) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dev.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
    return engine, make_sessionmaker(engine)


def test_commits_relaxed_then_hands_back_a_full_connection(tmp_path: Path) -> None:
    engine, sessions = _setup(tmp_path)
    with redoable_transaction(sessions) as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == NORMAL
        session.execute(text("INSERT INTO t VALUES (1)"))
    with transaction(sessions) as session:  # the same pooled connection (a one-thread pool reuses it)
        assert session.execute(text("PRAGMA synchronous")).scalar() == FULL
        assert session.execute(text("SELECT v FROM t")).scalars().all() == [1]
    engine.dispose()


def test_an_error_rolls_back_and_still_restores_full(tmp_path: Path) -> None:
    engine, sessions = _setup(tmp_path)
    with pytest.raises(RuntimeError), redoable_transaction(sessions) as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("boom")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    engine.dispose()
