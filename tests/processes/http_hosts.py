"""Server processes for the process tests: ``patrol-server run`` serving HTTP only (no broker, no ingest, no
fines scheduler) on a given database and video folder, started together and stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from process_tree import wait_for

from simulators.demo import free_port

BIN = Path(sys.executable).parent


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def http_only_config(directory: Path, db_url: str, port: int, video_dir: Path) -> Path:
    """A server configuration file in ``directory`` (made here)."""
    directory.mkdir(parents=True)
    config = directory / "server.toml"
    config.write_text(
        f"""data_dir = "{directory / "data"}"

[database]
url = "{db_url}"

[http]
port = {port}

[mqtt]
embedded = false
workers = 0

[storage]
video_dir = "{video_dir}"

[review]
verify_interval_s = 0

[fines]
enabled = false

[keys]
signing_key_file = "{directory / "data" / "server.key"}"
""",
        encoding="utf-8",
    )
    return config


@contextlib.contextmanager
def http_hosts(directory: Path, db_url: str, video_dir: Path, names: list[str]) -> Iterator[list[str]]:
    """One server process per name, all on ``db_url`` and ``video_dir``, answering ``/healthz``; their base
    URLs. Logs go to ``<directory>/<name>.log``."""
    procs: list[subprocess.Popen[bytes]] = []
    ports = []
    try:
        for name in names:
            port = free_port()
            config = http_only_config(directory / name, db_url, port, video_dir)
            with (directory / f"{name}.log").open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        [str(BIN / "patrol-server"), "--config", str(config), "run"],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            ports.append(port)
        for port in ports:
            wait_for(lambda p=port: healthy(p), f"the server on port {port} to answer", limit=90)  # type: ignore[misc]
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
