"""The access audit as a hash chain: each row carries the hash of the one before; ``patrol-server audit verify``
walks it and names the first row that does not fit, whatever was done to the table (a changed field, a row
taken out, a row put in, the head rewound), even by someone who drops the append-only triggers first."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from server.cli import main
from server.db.supervisors import AccessAudit
from server.review import audit
from server.review.audit import Operator
from server.review.audit_chain import GENESIS, verify_chain

from .conftest import NUMBER, Workspace


def _config(tmp_path: Path, db_url: str) -> str:
    path = tmp_path / "server.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    return str(path)


def _add(sessions: sessionmaker[Session], n: int, who: str = "cli:test") -> None:
    with sessions() as session, session.begin():
        for i in range(n):
            audit.record(session, Operator(who), "search", _now(sessions) + timedelta(seconds=i), detail=f"q={i}")


def _now(_: object) -> object:
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _drop_triggers(session: Session) -> None:
    """What an attacker with the database's owner rights would do first."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("DROP TRIGGER review_audit_append_only ON review_access_audit"))
    else:
        session.execute(text("DROP TRIGGER review_audit_no_update"))
        session.execute(text("DROP TRIGGER review_audit_no_delete"))


def test_rows_are_chained_from_the_genesis_and_the_command_says_intact(
    ws: Workspace, server_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ws.login() == 303
    ws.client.get("/review/protocols", params={"plate": "123"})
    ws.client.get(f"/review/protocols/{NUMBER.replace('/', '%2F')}")
    with ws.sessions() as session:
        rows = list(session.scalars(select(AccessAudit).order_by(AccessAudit.id)))
    assert [r.action for r in rows] == ["search", "protocol.view"]
    assert rows[0].prev_hash == GENESIS and rows[1].prev_hash == rows[0].row_hash
    assert main(["--config", _config(tmp_path, server_db_url), "audit", "verify"]) == 0
    assert capsys.readouterr().out == f"audit chain intact: 2 rows; last row 2, hash {rows[1].row_hash}\n", (
        "the last hash, noted elsewhere, shows later whether the chain was cut back at its end"
    )


@pytest.mark.parametrize("attack", ["change", "delete", "insert"])
def test_any_change_to_the_table_breaks_the_chain_at_the_row_it_touched(
    server_sessions: sessionmaker[Session], server_db_url: str, tmp_path: Path, attack: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _add(server_sessions, 6)
    with server_sessions() as session, session.begin():
        _drop_triggers(session)
        if attack == "change":
            session.execute(text("UPDATE review_access_audit SET detail = 'q=innocent' WHERE id = 3"))
        elif attack == "delete":
            session.execute(text("DELETE FROM review_access_audit WHERE id = 4"))
        elif attack == "insert":
            row = session.get(AccessAudit, 2)
            assert row is not None
            session.execute(text("UPDATE review_access_audit SET id = id + 100 WHERE id >= 3"))
            session.execute(
                text("INSERT INTO review_access_audit (id, at, supervisor_login, action, session_ref, client, detail, "
                     "prev_hash, row_hash) VALUES (3, :at, 'x', 'search', '', '', 'forged', :p, :h)"),
                {"at": row.at, "p": row.row_hash, "h": "f" * 64},
            )  # fmt: skip
    with server_sessions() as session:
        report = verify_chain(session)
    expected = {"change": 3, "delete": 5, "insert": 3}[attack]  # the first row that does not fit
    assert not report.intact and report.broken_at == expected, report
    assert main(["--config", _config(tmp_path, server_db_url), "audit", "verify"]) == 1
    assert f"BROKEN at row {expected}" in capsys.readouterr().err


def test_the_head_row_is_checked_against_the_chains_end(server_sessions: sessionmaker[Session]) -> None:
    _add(server_sessions, 3)
    with server_sessions() as session, session.begin():
        _drop_triggers(session)
        session.execute(text("DELETE FROM review_access_audit WHERE id = 3"))
    with server_sessions() as session:
        report = verify_chain(session)
    assert not report.intact and "the head names row 3" in report.reason


def test_concurrent_writers_queue_on_the_head_and_never_fork_the_chain(server_sessions: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for _ in range(10):
                _add(server_sessions, 1, name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"cli:w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with server_sessions() as session:
        report = verify_chain(session)
        ids = list(session.scalars(select(AccessAudit.id).order_by(AccessAudit.id)))
    assert report.intact and report.rows == 40 and ids == list(range(1, 41))


def test_the_table_still_refuses_update_and_delete(server_sessions: sessionmaker[Session]) -> None:
    _add(server_sessions, 1)
    for statement in ("UPDATE review_access_audit SET detail = 'x'", "DELETE FROM review_access_audit"):
        with pytest.raises(DBAPIError, match="append-only"), server_sessions() as session, session.begin():
            session.execute(text(statement))


def test_rows_from_before_the_chain_are_chained_by_the_migration(server_db_url: str) -> None:
    from datetime import UTC, datetime

    from server.db.base import make_engine, make_sessionmaker
    from server.db.migrate import upgrade

    upgrade(server_db_url, "s0014_payment_attempts")
    engine = make_engine(server_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO supervisor (id, login, full_name, password_hash, active, created_at, "
                              "password_changed_at) VALUES (1, 'anna', 'A', 'x', true, :t, :t)"),
                         {"t": datetime(2026, 1, 1, tzinfo=UTC)})  # fmt: skip
            for i in range(1, 4):
                conn.execute(
                    text("INSERT INTO review_access_audit (id, at, supervisor_id, supervisor_login, action, "
                         "protocol_number, session_ref, client, detail) VALUES (:i, :t, 1, 'anna', 'protocol.view', "
                         "'KZ-1', 's', '127.0.0.1', '')"),
                    {"i": i, "t": datetime(2026, 1, 1, 9, i, 0, 123456, tzinfo=UTC)},
                )  # fmt: skip
        upgrade(server_db_url)
        sessions = make_sessionmaker(engine)
        _add(sessions, 1)
        with sessions() as session:
            report = verify_chain(session)
        assert report.intact and report.rows == 4
    finally:
        engine.dispose()
