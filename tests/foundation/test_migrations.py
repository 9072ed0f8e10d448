"""Migrations run up, down and up again on the server database (PostgreSQL or SQLite) and on the device's SQLite."""

from __future__ import annotations

from sqlalchemy import inspect

from edge.db.base import make_engine as device_engine
from edge.db.migrate import downgrade as device_down
from edge.db.migrate import upgrade as device_up
from edge.db.schema import metadata as device_metadata
from server.db.base import make_engine as server_engine
from server.db.migrate import downgrade as server_down
from server.db.migrate import upgrade as server_up
from server.db.schema import metadata as server_metadata


def _tables(url: str, make_engine: object) -> set[str]:
    engine = make_engine(url)  # type: ignore[operator]
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_server_migrations_create_every_model_table_and_drop_them_again(server_db_url: str) -> None:
    server_up(server_db_url)
    assert _tables(server_db_url, server_engine) == set(server_metadata().tables)
    server_down(server_db_url)
    assert _tables(server_db_url, server_engine) == set()
    server_up(server_db_url)
    assert {"device", "protocol", "payment", "officer"} <= _tables(server_db_url, server_engine)


def test_device_migrations_create_every_model_table_and_drop_them_again(device_db_url: str) -> None:
    device_up(device_db_url)
    assert _tables(device_db_url, device_engine) == set(device_metadata().tables)
    device_down(device_db_url)
    assert _tables(device_db_url, device_engine) == set()
    device_up(device_db_url)
    assert {"protocol", "payment", "outbox", "device_meta"} <= _tables(device_db_url, device_engine)


def test_device_database_is_in_wal_mode_with_full_sync(device_db_url: str) -> None:
    device_up(device_db_url)
    engine = device_engine(device_db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
