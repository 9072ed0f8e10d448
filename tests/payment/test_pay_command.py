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

from edge.db.payment_attempts import PaymentAttempt, PaymentSettlement
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


def _env(device_db_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATROLKIT_EDGE__DATABASE__URL": device_db_url,
        "PATROLKIT_EDGE__DEVICE__DATA_DIR": str(tmp_path),
    }


def _edge(env: dict[str, str], *argv: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, stdin=stdin,
    )  # fmt: skip


def _pay(env: dict[str, str], sim: dict[str, str], printer: str, number: str, *extra: str,
         stdin: int | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return _edge(env, "pay", number, "--officer", "B-1", "--terminal", sim["terminal"], "--printer", printer,
                 *extra, stdin=stdin)  # fmt: skip


def _pay_and_die(device_db_url: str, sim: dict[str, str], kill_at: str, number: str) -> None:
    """An ECR process pays ``number`` and is SIGKILLed at ``kill_at`` (see crash_driver.py)."""
    driver = str(Path(__file__).with_name("crash_driver.py"))
    killed = subprocess.run(
        [sys.executable, driver, device_db_url, sim["terminal"], kill_at, number], cwd=ROOT, capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]


def test_pay_command_takes_a_payment_through_the_simulator(
    sim_process: dict[str, str],
    printer_sim: tuple[str, Path],
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    tmp_path: Path,
) -> None:
    protocol_factory(device_sessions, "P-CLI")
    env = _env(device_db_url, tmp_path)
    done = _pay(env, sim_process, printer_sim[0], "P-CLI")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    # each state once, in words, and the terminal's own texts; no log lines mixed in
    for line in (
        "terminal: insert card",
        "authorising: 10\u00a0830.00 ₸",
        "approved by the terminal; result saved: trace 10",
    ):
        assert out.count(line) == 1, done.stdout
    assert [line.split(":")[0] for line in out if line.startswith(("payment", "card read", "paid"))] == [
        "payment attempt opened", "card read", "payment recorded", "paid",
    ]  # fmt: skip
    assert '{"ts"' not in done.stdout + done.stderr and done.stderr == ""
    assert "paid: protocol P-CLI 10\u00a0830.00 ₸" in done.stdout
    # both receipts came out of the printer: the driver's copy and the protocol copy
    assert "receipt copy 1: CONFIRMED" in done.stdout and "receipt copy 2: CONFIRMED" in done.stdout
    assert len(list(printer_sim[1].glob("*.png"))) == 2
    with device_sessions() as s:
        assert s.scalars(select(Payment)).one().protocol_number == "P-CLI"
    again = _pay(env, sim_process, printer_sim[0], "P-CLI")
    assert again.returncode == 1 and "already paid" in again.stderr
    state = httpx.get(sim_process["api"] + "/state").json()
    assert [c["status"] for c in state["charges"]] == ["booked"]


def test_control_card_changes_the_card_of_the_next_payment(
    sim_process: dict[str, str],
    printer_sim: tuple[str, Path],
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    tmp_path: Path,
) -> None:
    protocol_factory(device_sessions, "P-CARD")
    control = subprocess.run(
        [sys.executable, "-m", "simulators.cli", "zvt", "control", "card", '{"card": "mc_chip"}', "--api",
         sim_process["api"]],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert control.returncode == 0 and json.loads(control.stdout)["card"] == "mc_chip"
    done = _pay(_env(device_db_url, tmp_path), sim_process, printer_sim[0], "P-CARD", "--yes")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "card read: ****4771 Debit Mastercard" in done.stdout
    with device_sessions() as s:
        assert s.scalars(select(Payment)).one().masked_pan.endswith("4771")


def test_an_unanswerable_own_card_question_aborts_on_the_terminal_without_a_traceback(
    sim_process: dict[str, str],
    printer_sim: tuple[str, Path],
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    tmp_path: Path,
) -> None:
    protocol_factory(device_sessions, "P-EOF")
    httpx.post(sim_process["api"] + "/card", json={"card": "mc_chip"})  # no name: the officer is asked
    done = _pay(_env(device_db_url, tmp_path), sim_process, printer_sim[0], "P-EOF", stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "payment aborted: the own-card question could not be answered (end of input" in done.stderr
    assert "aborted on the terminal (06 B0)" in done.stderr
    state = httpx.get(sim_process["api"] + "/state").json()
    assert state["commands"][-1] == "abort" and "authorisation" not in state["commands"]
    assert state["charges"] == []


def test_an_attempt_in_doubt_is_shown_settled_by_end_of_day_and_pay_offers_its_receipts(
    sim_process: dict[str, str],
    printer_sim: tuple[str, Path],
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    tmp_path: Path,
) -> None:
    """Killed after the terminal booked it, on a terminal without Repeat Receipt: `pay` says in doubt and
    what to do; `payment end-of-day` finds it charged; `pay` then offers `receipt resume` (not 'already paid')."""
    protocol_factory(device_sessions, "P-DOUBT")
    env = _env(device_db_url, tmp_path)
    assert (
        httpx.post(sim_process["api"] + "/profile", json={"profile": "no_repeat_receipt"}).status_code == 200
    )
    _pay_and_die(device_db_url, sim_process, "after_ack", "P-DOUBT")
    doubt = _pay(env, sim_process, printer_sim[0], "P-DOUBT")
    assert doubt.returncode == 5, doubt.stdout + doubt.stderr
    assert "in doubt: payment of protocol P-DOUBT is in doubt" in doubt.stderr
    assert "refused Repeat Receipt" in doubt.stderr and "patrol-edge payment end-of-day" in doubt.stderr
    status = _edge(env, "payment", "status")
    assert status.returncode == 0 and "P-DOUBT is in doubt" in status.stdout
    eod = _edge(env, "payment", "end-of-day", "--terminal", sim_process["terminal"])
    assert eod.returncode == 0, eod.stderr
    assert "charged (protocol P-DOUBT)" in eod.stdout and "receipt resume P-DOUBT" in eod.stdout
    assert "no payment attempt is in doubt" in eod.stdout
    attempt = status.stdout.split("attempt ")[1].split(" ")[0]
    twice = _edge(env, "payment", "settle", attempt, "--not-charged", "--reason", "x", "--by", "B-1")
    assert twice.returncode == 2 and "already settled" in twice.stderr and "end-of-day" in twice.stderr
    found = _pay(env, sim_process, printer_sim[0], "P-DOUBT")
    assert found.returncode == 4, found.stdout + found.stderr
    assert "recovery found this protocol paid, settled by the terminal's end-of-day totals" in found.stdout
    assert "patrol-edge receipt resume P-DOUBT" in found.stdout and "already paid" not in found.stderr
    resumed = _edge({**env, "PATROLKIT_EDGE__PRINTER__URL": printer_sim[0]}, "receipt", "resume", "P-DOUBT")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [p["state"] for p in json.loads(resumed.stdout)["printed"]] == ["CONFIRMED", "CONFIRMED"]
    printed = _pay(env, sim_process, printer_sim[0], "P-DOUBT")
    assert printed.returncode == 0 and "its receipts were printed already" in printed.stdout
    state = httpx.get(sim_process["api"] + "/state").json()
    assert [c["status"] for c in state["charges"]] == ["booked"]


def test_settle_command_records_a_decision_and_frees_the_protocol(
    sim_process: dict[str, str],
    printer_sim: tuple[str, Path],
    device_db_url: str,
    device_sessions: sessionmaker[Session],
    protocol_factory: Callable[..., None],
    tmp_path: Path,
) -> None:
    protocol_factory(device_sessions, "P-DEC")
    env = _env(device_db_url, tmp_path)
    httpx.post(sim_process["api"] + "/profile", json={"profile": "no_repeat_receipt"})
    _pay_and_die(device_db_url, sim_process, "before_persist", "P-DEC")
    assert _pay(env, sim_process, printer_sim[0], "P-DEC").returncode == 5
    with device_sessions() as s:
        attempt = s.scalars(select(PaymentAttempt.id)).one()
    missing = _edge(env, "payment", "settle", attempt[:8], "--not-charged", "--reason", " ", "--by", "B-1")
    assert missing.returncode == 2 and "needs a reason" in missing.stderr
    done = _edge(env, "payment", "settle", attempt[:8], "--not-charged", "--reason",
                 "driver's bank shows no debit", "--by", "B-1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"settled attempt {attempt} of protocol P-DEC: not charged" in done.stdout
    paid = _pay(env, sim_process, printer_sim[0], "P-DEC")
    assert paid.returncode == 0, paid.stderr
    with device_sessions() as s:
        assert s.scalars(select(PaymentSettlement.method)).one() == "decision"


def test_control_api_changes_scenario_and_rejects_bad_requests(sim_process: dict[str, str]) -> None:
    api = sim_process["api"]
    assert httpx.post(api + "/scenario", json={"scenario": "declined"}).json()["scenario"] == "declined"
    assert httpx.post(api + "/fault", json={"kind": "bad_crc"}).json()["faults_pending"] == ["bad_crc"]
    bad = httpx.post(api + "/scenario", json={"scenario": "nonsense"})
    assert bad.status_code == 400 and "nonsense" in bad.json()["error"]
    assert httpx.post(api + "/fault", json={"kind": "melt"}).status_code == 400
    assert (
        httpx.post(api + "/profile", json={"profile": "no_repeat_receipt"}).json()["profile"]
        == "no_repeat_receipt"
    )
    assert httpx.post(api + "/profile", json={"profile": "nonsense"}).status_code == 400
    assert httpx.post(api + "/fault", json={"kind": "unplug", "apdu_prefix": "040f", "skip": 1}).json()[
        "faults_pending"
    ] == ["bad_crc", "unplug"]
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
