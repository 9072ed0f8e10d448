"""Migrations run up, down and up again on the server database (PostgreSQL or SQLite) and on the device's SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, select, text

from edge.db.base import make_engine as device_engine
from edge.db.migrate import downgrade as device_down
from edge.db.migrate import upgrade as device_up
from edge.db.schema import metadata as device_metadata
from server.db.base import make_engine as server_engine
from server.db.base import make_sessionmaker
from server.db.migrate import downgrade as server_down
from server.db.migrate import upgrade as server_up
from server.db.schema import metadata as server_metadata
from server.db.video import VideoSegment


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


def test_e0008_moves_outbox_content_out_and_never_reuses_a_sequence_number(device_db_url: str) -> None:
    """A device upgraded with a backlog keeps every record's body, payload and signature, and the outbox
    keeps AUTOINCREMENT and its counter (here above the highest row, as after rows were removed)."""
    device_up(device_db_url, "e0007")
    engine = device_engine(device_db_url)
    with engine.begin() as conn:
        for seq, payload in ((1, b'{"signed":1}'), (2, None)):
            conn.exec_driver_sql(
                "INSERT INTO outbox (seq, epoch, record_id, record_type, body, created_at, state, sv, priority, "
                "refs, payload, sig, kid, sha256, attempts, next_attempt_at) VALUES "
                "(?, 'ep', ?, 'protocol', ?, '2026-03-02 09:00:00', 'pending', 1, 0, '{}', ?, ?, ?, ?, 0, 0)",
                (seq, f"r{seq}", f'{{"n":{seq}}}', payload, b"s" * 64 if payload else None,
                 "k" if payload else None, "a" * 64 if payload else None),
            )  # fmt: skip
        conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = 40 WHERE name = 'outbox'")
    engine.dispose()
    device_up(device_db_url)
    engine = device_engine(device_db_url)
    with engine.begin() as conn:
        got = conn.exec_driver_sql("SELECT seq, body, payload, sig FROM outbox_content ORDER BY seq").all()
        assert [tuple(r) for r in got] == [
            (1, '{"n":1}', b'{"signed":1}', b"s" * 64),
            (2, '{"n":2}', None, None),
        ]
        assert (
            "AUTOINCREMENT"
            in conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'outbox'").scalar()
        )
        conn.exec_driver_sql(
            "INSERT INTO outbox (epoch, record_id, record_type, created_at, state, sv, priority, refs, attempts, "
            "next_attempt_at) VALUES ('ep', 'r3', 'protocol', '2026-03-02 09:00:00', 'pending', 1, 0, '{}', 0, 0)"
        )
        assert conn.exec_driver_sql("SELECT max(seq) FROM outbox").scalar() == 41
    engine.dispose()
    device_down(device_db_url, "e0007")  # and back: the content returns to the outbox row
    engine = device_engine(device_db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT body, payload FROM outbox WHERE seq = 1").one() == (
            '{"n":1}',
            b'{"signed":1}',
        )
    engine.dispose()


def _drift(url: str, make_engine: object, metadata: MetaData) -> list[object]:
    engine = make_engine(url)  # type: ignore[operator]
    try:
        with engine.connect() as conn:
            return list(
                compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
            )
    finally:
        engine.dispose()


def test_migrated_schemas_are_exactly_the_models(server_db_url: str, device_db_url: str) -> None:
    """Tables, columns, types and indexes made by the migrations are the ones the code declares: a model
    changed without its migration (or the reverse) shows up here, not in production."""
    server_up(server_db_url)
    device_up(device_db_url)
    assert _drift(server_db_url, server_engine, server_metadata()) == []
    assert _drift(device_db_url, device_engine, device_metadata()) == []


def test_footage_times_survive_a_server_whose_time_zone_is_not_utc(server_db_url: str) -> None:
    """A server set to Almaty time must still place a segment at the UTC instant the camera recorded."""
    server_up(server_db_url)
    engine = server_engine(server_db_url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE \"{engine.url.database}\" SET timezone TO 'Asia/Almaty'")
            conn.commit()
        engine.dispose()  # new connections take the database's time zone
    at = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        session.add(
            VideoSegment(
                device_id="PD-tz",
                seq=1,
                started_at=at,
                ended_at=at + timedelta(seconds=10),
                frames=300,
                size=1,
                sha256="0" * 64,
                prev_hash="",
                entry_hash="1" * 64,
                entry_json="{}",
                storage_key="PD-tz/1.mp4",
                created_at=at,
                stored_at=at,
            )
        )
    with sessions() as session:
        row = session.scalars(select(VideoSegment)).one()
        if engine.dialect.name == "postgresql":
            assert session.execute(text("SHOW timezone")).scalar() == "Asia/Almaty"
    engine.dispose()
    assert (row.started_at, row.ended_at, row.created_at, row.stored_at) == (
        at,
        at + timedelta(seconds=10),
        at,
        at,
    )
