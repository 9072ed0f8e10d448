"""`patrol-server run` stops when told: SIGTERM or SIGINT stops its HTTP server, ingest workers and embedded broker,
logs that it stopped, exits 0 and leaves no port open."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from process_tree import descendants, events_named, listening, wait_for

from simulators.demo import free_port

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.timeout(120), pytest.mark.backend]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_server_and_frees_its_ports(
    tmp_path: Path, server_db_url: str, sig: signal.Signals
) -> None:
    http, mqtt = free_port(), free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f"""data_dir = "{tmp_path / "server"}"

[database]
url = "{server_db_url}"

[http]
port = {http}

[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
embedded = true

[storage]
video_dir = "{tmp_path / "server" / "video"}"

[keys]
signing_key_file = "{tmp_path / "server" / "server.key"}"
""",
        encoding="utf-8",
    )
    log = tmp_path / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "patrol-server"), "--config", str(config), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _healthy(http) and listening(mqtt), "the server to answer", limit=60)
        proc.send_signal(sig)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stopped = events_named(log, "server.stopped")
    assert [e.get("signal") for e in stopped] == [sig.name], log.read_text()
    assert not listening(http) and not listening(mqtt)
    assert not descendants(proc.pid)
