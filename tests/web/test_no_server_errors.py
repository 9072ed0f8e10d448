"""A schemathesis run against a real server process: every documented operation with its path and query
parameters, headers (the device signature headers, Upload-Offset, Range) and bodies, valid and invalid; no
request may get a 5xx. It runs as an anonymous client and again with a logged-in supervisor's cookie, so
that the review pages and playback get past their login.

Random values rarely name a registered device or a stored segment, so the run also draws from a fuzzing
dictionary (schemathesis' ``dictionaries``): the live server's device and segment, and numbers and headers
known to trip parsers (Unicode digits, hundreds of digits).

The seed is fixed so that a run is reproducible (CI does not go red by luck); set ``PATROLKIT_FUZZ_SEED`` to explore
others. The CLI is schemathesis' own runner (its pytest integration does not run under this pytest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..browser_support import LiveServer, Stop, seed_stop
from .http_client import supervisor_client

MAX_EXAMPLES = 30
FUZZ_SEED = "239165779087064340971051574572070803939"
HOSTILE_NUMBERS = ["²", "١", "１", "9" * 400, "5" * 5000, "-1", "0x1"]


@pytest.fixture(scope="module")
def stop(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Stop:
    return seed_stop(live_server, tmp_path_factory.mktemp("device"))


def _config(path: Path, stop: Stop) -> Path:
    def words(values: list[str]) -> str:
        return json.dumps(values, ensure_ascii=False)  # a JSON array of strings is a TOML array

    path.write_text(
        f"[dictionaries.device]\nvalues = {words([stop.device_id])}\n"
        f"[dictionaries.seq]\nvalues = {words([str(stop.seq), *HOSTILE_NUMBERS])}\n"
        f"[dictionaries.number]\nvalues = {words(HOSTILE_NUMBERS)}\n"
        f"[dictionaries.range]\nvalues = {words(['bytes=0-99', *(f'bytes={n}-' for n in HOSTILE_NUMBERS)])}\n"
        "[parameters]\n"
        '"path.device_id" = { dictionary = "device", probability = 0.7 }\n'
        '"path.seq" = { dictionary = "seq", probability = 0.7 }\n'
        '"header.X-Patrol-Device" = { dictionary = "device", probability = 0.7 }\n'
        '"header.X-Patrol-Timestamp" = { dictionary = "number", probability = 0.5 }\n'
        '"header.Upload-Offset" = { dictionary = "number", probability = 0.5 }\n'
        '"header.Range" = { dictionary = "range", probability = 0.7 }\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("who", ["anonymous", "supervisor"])
def test_schemathesis_finds_no_server_error(live_server: LiveServer, stop: Stop, tmp_path: Path, who: str) -> None:
    extra: list[str] = []
    if who == "supervisor":
        client = supervisor_client(live_server)
        client.close()
        extra = ["--header", f"Cookie: pk_review={client.cookies['pk_review']}"]
    run = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(_config(tmp_path / "schemathesis.toml", stop)),
            "run", f"{live_server.url}/openapi.json",
            "--checks", "not_a_server_error",
            "--mode", "all",
            "--max-examples", str(MAX_EXAMPLES),
            "--phases", "examples,coverage,fuzzing",
            "--generation-database", "none",
            "--request-timeout", "30",
            "--workers", "1",
            "--seed", os.environ.get("PATROLKIT_FUZZ_SEED", FUZZ_SEED),
            "--no-color",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " generated" in run.stdout and "Server error" not in run.stdout, run.stdout[-2000:]
