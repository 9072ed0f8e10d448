"""``patrol-server supervisor add|password|disable``: accounts made from the command line; the password comes
from a file or a prompt and never appears in the output, the logs or the database."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.cli import main
from server.db.supervisors import Supervisor
from server.review.accounts import verify_password

SECRET = "Tr0ub4dor&3 long enough"


@pytest.fixture
def config(tmp_path: Path, server_db_url: str, server_sessions: sessionmaker[Session]) -> str:
    path = tmp_path / "server.toml"
    path.write_text(f'[database]\nurl = "{server_db_url}"\n', encoding="utf-8")
    return str(path)


def _secret_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pw.txt"
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


def _supervisors(sessions: sessionmaker[Session]) -> list[Supervisor]:
    with sessions() as session:
        return list(session.scalars(select(Supervisor).order_by(Supervisor.login)))


def test_add_with_password_file_stores_only_a_hash_and_never_prints_the_password(
    config: str,
    tmp_path: Path,
    server_sessions: sessionmaker[Session],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pw = _secret_file(tmp_path, SECRET)
    code = main(
        ["--config", config, "supervisor", "add", "anna", "--name", "Анна Ким", "--password-file", pw]
    )
    out = capsys.readouterr()
    assert code == 0 and "supervisor anna added" in out.out and "/review" in out.out
    assert SECRET not in out.out + out.err + caplog.text
    (anna,) = _supervisors(server_sessions)
    assert (anna.login, anna.full_name, anna.active) == ("anna", "Анна Ким", True)
    assert SECRET not in anna.password_hash and verify_password(SECRET, anna.password_hash)


def test_bad_accounts_are_refused_with_the_reason_and_store_nothing(
    config: str, tmp_path: Path, server_sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    short = _secret_file(tmp_path, "short")
    assert (
        main(["--config", config, "supervisor", "add", "anna", "--name", "A", "--password-file", short]) == 1
    )
    assert "too short" in capsys.readouterr().err
    pw = _secret_file(tmp_path, SECRET)
    assert (
        main(["--config", config, "supervisor", "add", "Bad Login", "--name", "A", "--password-file", pw])
        == 1
    )
    assert "login" in capsys.readouterr().err
    assert _supervisors(server_sessions) == []
    assert main(["--config", config, "supervisor", "add", "anna", "--name", "A", "--password-file", pw]) == 0
    assert main(["--config", config, "supervisor", "add", "anna", "--name", "B", "--password-file", pw]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [s.full_name for s in _supervisors(server_sessions)] == ["A"]
    assert main(["--config", config, "supervisor", "disable", "nobody"]) == 1


def test_disable_and_password_change(
    config: str, tmp_path: Path, server_sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    pw = _secret_file(tmp_path, SECRET)
    assert main(["--config", config, "supervisor", "add", "anna", "--name", "A", "--password-file", pw]) == 0
    new = tmp_path / "new.txt"
    new.write_text("another long password\n", encoding="utf-8")
    assert main(["--config", config, "supervisor", "password", "anna", "--password-file", str(new)]) == 0
    (anna,) = _supervisors(server_sessions)
    assert verify_password("another long password", anna.password_hash)
    assert not verify_password(SECRET, anna.password_hash)
    assert main(["--config", config, "supervisor", "disable", "anna"]) == 0
    (anna,) = _supervisors(server_sessions)
    assert not anna.active and anna.disabled_at is not None
    capsys.readouterr()
    assert main(["--config", config, "supervisor", "list"]) == 0
    assert capsys.readouterr().out == "anna\tsupervisor\tdisabled\tA\n"
