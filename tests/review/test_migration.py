"""The s0009 migration (supervisors, sessions, login attempts, access audit) goes down and up again cleanly."""

from __future__ import annotations

from sqlalchemy import inspect

from server.db.base import make_engine
from server.db.migrate import downgrade, upgrade

TABLES = {"supervisor", "supervisor_session", "supervisor_login_attempt", "review_access_audit"}


def test_s0009_downgrades_to_s0008_and_upgrades_again(server_db_url: str) -> None:
    upgrade(server_db_url)
    downgrade(server_db_url, "s0008")
    engine = make_engine(server_db_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(server_db_url, "s0009")
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
