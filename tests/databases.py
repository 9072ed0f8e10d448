"""Fresh server databases for tests: a new PostgreSQL database next to ``PATROLKIT_TEST_DB_URL`` (dropped
afterwards), else a SQLite file."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url


@contextlib.contextmanager
def fresh_server_db(directory: Path) -> Iterator[str]:
    """URL of a fresh, empty server database (PostgreSQL when configured, else a SQLite file in
    ``directory``), dropped afterwards."""
    env = os.environ.get("PATROLKIT_TEST_DB_URL")
    if not env:
        yield f"sqlite:///{directory / 'server.db'}"
        return
    import psycopg

    base = make_url(env)
    name = f"pk_{uuid.uuid4().hex[:16]}"
    admin = f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} dbname={base.database or 'postgres'}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        # engines in tests must be disposed before the drop; a server process must have ended
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
