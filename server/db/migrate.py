"""Runs the server database's Alembic migrations from code (no alembic.ini needed). On PostgreSQL an upgrade
holds an advisory lock, so that several server hosts starting at once migrate one after the other (the later
ones find the schema at head and do nothing)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK = 0x7061_7472_6F6C_6462  # the advisory lock number of schema changes


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _one_migration_at_a_time(url: str) -> Iterator[None]:
    if not url.startswith("postgresql"):
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:n)"), {"n": MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:n)"), {"n": MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str, target: str = "heads") -> None:
    with _one_migration_at_a_time(url):
        command.upgrade(alembic_config(url), target)


def downgrade(url: str, target: str = "base") -> None:
    command.downgrade(alembic_config(url), target)


def head_revisions(url: str = "sqlite://") -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
