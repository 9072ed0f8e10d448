"""Configuration: defaults run the demo, env overrides the file, and a bad value fails naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import ConfigError
from edge.config import load_edge_config
from server.config import load_server_config


def test_defaults_need_no_file() -> None:
    cfg = load_edge_config(None, {})
    assert cfg.terminal.baudrate == 9600
    assert cfg.database_url.startswith("sqlite:///")
    assert load_server_config(None, {}).database.url.startswith("sqlite:///")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    f = tmp_path / "edge.toml"
    f.write_text('[terminal]\nurl = "serial:///dev/ttyUSB0"\nbaudrate = 9600\n', encoding="utf-8")
    cfg = load_edge_config(f, {"PATROLKIT_EDGE__TERMINAL__BAUDRATE": "115200"})
    assert cfg.terminal.url == "serial:///dev/ttyUSB0"
    assert cfg.terminal.baudrate == 115200


def test_holidays_come_from_configuration(tmp_path: Path) -> None:
    f = tmp_path / "edge.toml"
    f.write_text("[rules]\nholidays = [2026-03-08, 2026-03-21]\n", encoding="utf-8")
    cfg = load_edge_config(f, {})
    assert [d.isoformat() for d in cfg.rules.holidays] == ["2026-03-08", "2026-03-21"]


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PATROLKIT_EDGE__TERMINAL__BAUDRATE": "1234"}, "terminal.baudrate"),
        ({"PATROLKIT_EDGE__CAMERA__FPS": "fast"}, "camera.fps"),
        ({"PATROLKIT_EDGE__TERMINAL__PASSWORD": "12ab56"}, "terminal.password"),
        ({"PATROLKIT_EDGE__DEVICE__ID": "bad id with spaces"}, "device.id"),
        ({"PATROLKIT_EDGE__DATABASE__URL": "postgresql://x/y"}, "database.url"),
        ({"PATROLKIT_EDGE__TERMINAL__COLOUR": "red"}, "terminal.colour"),
    ],
)
def test_bad_edge_value_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_edge_config(None, env)
    assert key in str(err.value)


def test_bad_server_value_names_the_key_and_the_env_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_server_config(None, {"PATROLKIT_SERVER__DATABASE__URL": "mysql://x"})
    msg = str(err.value)
    assert "database.url" in msg and "PATROLKIT_SERVER__DATABASE__URL" in msg


def test_unknown_section_in_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "server.toml"
    f.write_text("[htpp]\nport = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="htpp"):
        load_server_config(f, {})


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "edge.toml"
    f.write_text("[terminal\nurl=", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"edge\.toml"):
        load_edge_config(f, {})
