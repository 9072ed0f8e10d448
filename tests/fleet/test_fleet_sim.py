"""The fleet simulator: many real senders, a device database each, through a broker the test restarts midway
into the ingest and the server database; every record is stored exactly once and every device comes back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from edge.db.base import make_engine
from simulators.fleet import BrokerKind, FleetSettings, running_fleet, share_compiled_statements
from simulators.fleet import mosquitto_binary as fleet_mosquitto_binary

DEVICES = 20
RECORDS = 10


def restartable_broker() -> BrokerKind:
    """Mosquitto of the test's own (restartable) on the real-backend run, else the embedded amqtt broker."""
    if not os.environ.get("PATROLKIT_TEST_MQTT_URL"):
        return BrokerKind.EMBEDDED
    if fleet_mosquitto_binary() is None:
        if os.environ.get("PATROLKIT_REQUIRE_MOSQUITTO") == "1":
            pytest.fail("needs the mosquitto binary: apt-get install mosquitto", pytrace=False)
        pytest.skip("needs the mosquitto binary: apt-get install mosquitto")
    return BrokerKind.MOSQUITTO


def test_a_fleet_drains_exactly_once_through_a_broker_restart(server_db_url: str, tmp_path: Path) -> None:
    kind = restartable_broker()
    settings = FleetSettings(
        devices=DEVICES,
        records=RECORDS,
        broker=kind,
        db_url=server_db_url,
        ingest_workers=1 if kind is BrokerKind.EMBEDDED else 2,
        batch=5,  # two messages per device: the restart falls between a device's messages
        window=5,  # one in flight: a device's second message leaves only once its first is acked
        ack_timeout_s=3.0,  # what the broker lost at the restart comes again soon
        idle_step_s=1.0,  # an idle sender looks for overdue records well within that timeout
        restart_broker=True,
        timeout_s=240.0,
        per_process=8,  # three device processes
        progress_s=0.01,  # the drain may take under half a second: its half-way point is seen
    )
    with running_fleet(settings, tmp_path) as fleet:
        result = fleet.run()
    assert result.restart is not None
    assert result.restart.reconnected == DEVICES, result.restart.line()
    assert fleet.acked_by_device == [RECORDS] * DEVICES  # each record freed once on its device
    assert result.device_pending == 0
    assert result.stored == DEVICES * RECORDS, result.lines()
    assert result.distinct_stored == DEVICES * RECORDS, result.lines()
    assert all(len(c) >= 2 for c in fleet.connects)  # each came back after the restart on its own
    # the ingest's own arrival-to-ack report counted every message of records, at least (asks and resends too)
    assert result.server_ack_le and result.server_ack_le[-1][1] >= DEVICES * RECORDS // 5, result.server_ack_le


def test_engines_sharing_compiled_statements_still_write_each_to_its_own_database(tmp_path: Path) -> None:
    engines = share_compiled_statements([make_engine(f"sqlite:///{tmp_path / f'd{n}.db'}") for n in range(3)])
    for n, engine in enumerate(engines):
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v INTEGER)"))
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": n})
    for n, engine in enumerate(engines):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM t")).scalars().all() == [n]
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # the device's own pragmas (FULL)
    cache = engines[0].get_execution_options()["compiled_cache"]
    assert cache is engines[2].get_execution_options()["compiled_cache"]
    for engine in engines:
        engine.dispose()
