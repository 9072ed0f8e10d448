"""``patrol-server device add`` run as a process: device ids are checked whole, and the files that hold the
device's secrets (its key, and its TOML with the MQTT password) are readable by their owner only."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.devices import Device

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, server_db_url: str, server_sessions: sessionmaker[Session]) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(f'[database]\nurl = "{server_db_url}"\n', encoding="utf-8")
    return path


def _device_add(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "--config", str(config), "device", "add", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("device_id", ["DEV-N\n", "DEV-N\r\n", "\nDEV-N", "DEV N", "DEV/N", "", "D" * 65])
def test_device_ids_with_a_line_break_or_other_characters_are_refused(
    config: Path, server_sessions: sessionmaker[Session], tmp_path: Path, device_id: str
) -> None:
    done = _device_add(config, device_id, "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "device id" in done.stdout
    with server_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_key_and_the_toml_with_the_mqtt_password_are_written_owner_only(
    config: Path, server_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "DEV-M1.toml").write_text("left from before\n")
    (out / "DEV-M1.toml").chmod(0o644)
    done = _device_add(config, "DEV-M1", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    toml = out / "DEV-M1.toml"
    assert "password = " in toml.read_text()
    for path in (toml, out / "DEV-M1.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
