"""`patrol-edge pay` against `patrol-sim zvt serve` in separate processes, as the demo runs it; the simulator's
HTTP control API; and the payment migration up and down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from edge.db.payments import Payment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture
def printer_sim(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The ESC/POS printer simulator on TCP, saving what it prints under tmp_path/printer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "printer"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", "printer", "--port", str(port), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"tcp://127.0.0.1:{port}", out
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators.cli",
            "zvt",
            "serve",
            "--pty",
            str(tmp_path / "zvt0"),
            "--http",
            "127.0.0.1:0",
            "--journal",
            str(tmp_path / "journal.json"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    yield info
    proc.terminate()
    proc.wait(10)


def test_pay_command_takes_a_payment_through_the_simulator(
    sim_process: dict[str, str],
    printer_sim: tuple[str, Path],
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    tmp_path: Path,
) -> None:
    protocol_factory(device_sessions, "P-CLI")
    env = {
        **os.environ,
        "PATROLKIT_EDGE__DATABASE__URL": device_db_url,
        "PATROLKIT_EDGE__DEVICE__DATA_DIR": str(tmp_path),
    }
    cmd = [
        sys.executable,
        "-m",
        "edge.cli",
        "pay",
        "P-CLI",
        "--officer",
        "B-1",
        "--terminal",
        sim_process["terminal"],
        "--printer",
        printer_sim[0],
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminal: insert card" in done.stdout and "terminal: approved" in done.stdout
    assert "paid: protocol P-CLI 10\u00a0830.00 ₸" in done.stdout
    # both receipts came out of the printer: the driver's copy and the protocol copy
    assert "receipt copy 1: CONFIRMED" in done.stdout and "receipt copy 2: CONFIRMED" in done.stdout
    assert len(list(printer_sim[1].glob("*.png"))) == 2
    with device_sessions() as s:
        assert s.scalars(select(Payment)).one().protocol_number == "P-CLI"
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already paid" in again.stderr
    state = httpx.get(sim_process["api"] + "/state").json()
    assert [c["status"] for c in state["charges"]] == ["booked"]


def test_control_api_changes_scenario_and_rejects_bad_requests(sim_process: dict[str, str]) -> None:
    api = sim_process["api"]
    assert httpx.post(api + "/scenario", json={"scenario": "declined"}).json()["scenario"] == "declined"
    assert httpx.post(api + "/fault", json={"kind": "bad_crc"}).json()["faults_pending"] == ["bad_crc"]
    bad = httpx.post(api + "/scenario", json={"scenario": "nonsense"})
    assert bad.status_code == 400 and "nonsense" in bad.json()["error"]
    assert httpx.post(api + "/fault", json={"kind": "melt"}).status_code == 400
    assert httpx.post(api + "/explode", json={}).status_code == 404


def test_payment_migration_runs_up_and_down(device_db_url: str) -> None:
    from edge.db.base import make_engine
    from edge.db.migrate import downgrade, upgrade

    upgrade(device_db_url)
    engine = make_engine(device_db_url)
    assert "payment_attempt" in inspect(engine).get_table_names()
    downgrade(device_db_url, "e0001")
    engine.dispose()
    engine = make_engine(device_db_url)
    assert "payment_attempt" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(device_db_url)
