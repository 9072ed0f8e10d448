"""The daily run as the operators use it (``patrol-server fines run`` in real processes): idempotent, one at
a time under a database lock, finishing the rest after a run killed with SIGKILL, and started by the server's
scheduler at the configured local time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from server.db.base import transaction
from server.db.fine_notices import FineNotification
from server.db.fines import Fine, FineEvent, FineRun, RunLease
from server.fines import issuing
from server.fines.daily_run import FineWork, run_daily
from server.fines.run_lock import RunBusy, run_lock
from server.fines.scheduler import FinesScheduler
from server.fines.sms_gateway import LogGateway
from server.keys import load_server_signer
from tests.conftest import ROOT
from tests.fines.conftest import DAY0, T0, kz_protocol

DEMAND_DAY = date(2026, 4, 21)  # 2 March + 50 days: every fine gets its demand SMS


def due_fines(sessions: sessionmaker[Session], n: int) -> None:
    """``n`` KZ fines issued on 2 March: one made through the real issuing path, the rest copies of its row."""
    body = kz_protocol("KZ-BULK-0")
    row = body | {"offence_date": DAY0, "discount_deadline": date.fromisoformat(body["discount_deadline"])}
    with transaction(sessions) as session:
        issuing.issue_from_protocols(session, T0, [row])
    with transaction(sessions) as session:
        first = session.scalars(select(Fine).where(Fine.number == "KZ-BULK-0")).one()
        values = {c.name: getattr(first, c.key) for c in Fine.__table__.columns if c.name != "id"}
        values["phone"] = "+77010000000"
        session.execute(update(Fine).where(Fine.id == first.id).values(phone="+77010000000"))
        rows = [values | {"number": f"KZ-BULK-{i}"} for i in range(1, n)]
        for i in range(0, len(rows), 5000):
            session.execute(insert(Fine), rows[i : i + 5000])


def config_file(tmp_path: Path, db_url: str, batch: int = 500) -> Path:
    load_server_signer(tmp_path / "server.key")  # the server's key exists before its processes start
    path = tmp_path / "server.toml"
    path.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "{db_url}"\n[keys]\nsigning_key_file = "{tmp_path}/server.key"\n'
        f'[fines]\nbatch = {batch}\n[fines.sms]\nlog_file = "{tmp_path}/sms.log"\n',
        encoding="utf-8",
    )
    return path


def fines_run(config: Path, day: date, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "--config",
            str(config),
            "fines",
            "run",
            "--date",
            day.isoformat(),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def scalar(sessions: sessionmaker[Session], query: Any) -> Any:
    with sessions() as session:
        return session.scalar(query)


def demands(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    """(demand events, demand SMS, fines in demand_sent)."""
    return (
        scalar(sessions, select(func.count()).select_from(FineEvent).where(FineEvent.step == "demand")),
        scalar(
            sessions,
            select(func.count()).select_from(FineNotification).where(FineNotification.step == "demand"),
        ),
        scalar(sessions, select(func.count()).select_from(Fine).where(Fine.state == "demand_sent")),
    )


def test_a_run_again_on_the_same_day_changes_nothing(
    server_sessions: sessionmaker[Session], work: FineWork
) -> None:
    due_fines(server_sessions, 120)
    first = run_daily(server_sessions, DEMAND_DAY, work, lambda: T0 + timedelta(days=50))
    assert (first.fines, first.errors) == (120, 0) and demands(server_sessions) == (120, 120, 120)
    again = run_daily(server_sessions, DEMAND_DAY, work, lambda: T0 + timedelta(days=50))
    assert (again.fines, again.happenings) == (0, 0) and demands(server_sessions) == (120, 120, 120)


def test_a_second_run_while_one_holds_the_lock_stops_and_changes_nothing(
    server_sessions: sessionmaker[Session], server_db_url: str, tmp_path: Path
) -> None:
    due_fines(server_sessions, 30)
    engine = server_sessions.kw["bind"]
    with run_lock(engine, lambda: datetime.now(UTC)):
        proc = fines_run(config_file(tmp_path, server_db_url), DEMAND_DAY)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 75, err.decode()
        assert b"another daily run holds the lock" in err
        assert demands(server_sessions) == (0, 0, 0)
    proc = fines_run(config_file(tmp_path, server_db_url), DEMAND_DAY)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().strip().splitlines()[-1])["run"]["fines"] == 30


def test_two_runs_started_at_once_do_not_double_anything(
    server_sessions: sessionmaker[Session], server_db_url: str, tmp_path: Path
) -> None:
    due_fines(server_sessions, 3000)
    config = config_file(tmp_path, server_db_url)
    procs = [fines_run(config, DEMAND_DAY), fines_run(config, DEMAND_DAY)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes in ([0, 0], [0, 75]), [p.stderr.read().decode()[-500:] for p in procs if p.stderr]
    assert demands(server_sessions) == (3000, 3000, 3000)
    lines = (tmp_path / "sms.log").read_text(encoding="utf-8").splitlines()
    references = [json.loads(line)["reference"] for line in lines]
    assert len(references) == len(set(references)) == 3000


def test_a_run_killed_in_the_middle_finishes_the_rest_when_run_again(
    server_sessions: sessionmaker[Session], server_db_url: str, tmp_path: Path
) -> None:
    n = 8000
    due_fines(server_sessions, n)
    config = config_file(tmp_path, server_db_url, batch=200)
    proc = fines_run(config, DEMAND_DAY, "--no-send")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and demands(server_sessions)[0] == 0:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # a real signal to the real process, in the middle of its batches
    proc.wait(timeout=30)
    done = demands(server_sessions)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < done[0] < n, f"the run was not cut off in the middle: {done}"
    assert done[0] == done[1] == done[2]  # only whole batches were committed
    with server_sessions() as session:
        assert session.scalar(select(FineRun.status)) == "running"
        if session.get_bind().dialect.name == "sqlite":
            assert (
                session.get_one(RunLease, "daily").pid == proc.pid
            )  # the dead holder's lease is still there
    again = fines_run(config, DEMAND_DAY)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()[-2000:]
    assert json.loads(out.decode().splitlines()[-1])["run"]["fines"] == n - done[0]
    assert demands(server_sessions) == (n, n, n)
    with server_sessions() as session:
        assert [s for (s,) in session.execute(select(FineRun.status).order_by(FineRun.id))] == [
            "cut_off",
            "done",
        ]
    lines = (tmp_path / "sms.log").read_text(encoding="utf-8").splitlines()
    assert len({json.loads(x)["reference"] for x in lines}) == len(lines) == n


def test_a_lease_held_by_a_live_run_on_another_host_is_respected_until_it_expires(
    server_sessions: sessionmaker[Session],
) -> None:
    engine = server_sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL uses an advisory lock: covered by the tests above
    clock = FakeClock(T0)
    with transaction(server_sessions) as session:
        session.add(
            RunLease(
                name="daily", holder="other:1", host="other-host", pid=1, expires_at=T0 + timedelta(minutes=5)
            )
        )
    try:
        with run_lock(engine, clock.now):
            raise AssertionError("the lock was taken from a live holder")
    except RunBusy as exc:
        assert "other:1" in str(exc)
    clock.advance(301)
    with run_lock(engine, clock.now):
        assert scalar(server_sessions, select(RunLease.host)) == socket.gethostname()


def test_the_server_starts_the_daily_run_at_the_configured_local_time(
    server_sessions: sessionmaker[Session], work: FineWork, tmp_path: Path
) -> None:
    due_fines(server_sessions, 10)
    clock = FakeClock(datetime(2026, 4, 20, 20, 0, tzinfo=UTC))  # 21 April, 01:00 in Almaty (UTC+5)
    scheduler = FinesScheduler(
        server_sessions, work, LogGateway(tmp_path / "sms.log"), run_at="02:00", timezone="Asia/Almaty",
        every_s=15, dataset_every_s=3600, dataset_jurisdiction="KZ", clock=clock,
    )  # fmt: skip
    assert scheduler.due_day(clock.now()) == date(
        2026, 4, 20
    )  # yesterday's run never happened: it comes first
    scheduler.tick()
    assert scalar(server_sessions, select(FineRun.run_on)) == date(2026, 4, 20)
    assert scheduler.due_day(clock.now()) is None and demands(server_sessions) == (0, 0, 0)
    clock.advance(3600 - 1)
    assert scheduler.due_day(clock.now()) is None
    clock.advance(1)  # 02:00 local
    assert scheduler.due_day(clock.now()) == DEMAND_DAY
    scheduler.tick()
    assert demands(server_sessions) == (10, 10, 10)
    with server_sessions() as session:
        assert set(session.scalars(select(FineNotification.status))) == {"sent"}
    scheduler.tick()
    assert scalar(server_sessions, select(func.count()).select_from(FineRun)) == 2


def test_the_server_process_runs_the_lifecycle_over_smpp_with_its_receipt_listener(
    server_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """``start_services`` as ``patrol-server run`` calls it: the scheduler's first round runs the day, sends the
    SMS through SMPP, and the receipt listener marks them delivered; both stop when told."""
    from server.app import create_app
    from server.config import ServerConfig
    from server.db.fine_notices import FineNotification as Note
    from server.fines.runtime import runtime_of
    from server.services import start_services
    from simulators.smsc import SmsCentre
    from tests.fines.conftest import georgian_fines

    with SmsCentre() as centre:
        config = ServerConfig.model_validate({
            "data_dir": str(tmp_path), "keys": {"signing_key_file": str(tmp_path / "server.key")},
            "mqtt": {"workers": 0}, "fines": {"sms": {"gateway": "smpp", "smpp_url": centre.url}},
        })  # fmt: skip
        app = create_app(config, server_sessions)
        georgian_fines(server_sessions, runtime_of(app).work, 2)
        services = start_services(config, app)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with server_sessions() as session:
                    if set(session.scalars(select(Note.status).where(Note.step == "sms_issued"))) == {
                        "delivered"
                    }:
                        break
                time.sleep(0.1)
            assert len(centre.texts()) >= 2
            with server_sessions() as session:
                assert set(session.scalars(select(Note.status).where(Note.step == "sms_issued"))) == {
                    "delivered"
                }
                assert session.scalar(select(FineRun.status)) == "done"
        finally:
            for service in reversed(services):
                service.stop()
