"""What the ingest stores for the supervisor workspace: a protocol's driver name as search keys
(``core.name_search``), once, so the stop is found by the name typed in Cyrillic or Latin letters; and when
each device status arrived by the server's clock, against which the fleet view measures the device's."""

from __future__ import annotations

from sqlalchemy import select
from sync_harness import T0, SyncRig, protocol_body

from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message
from core.sync.records import DeviceStatusRecordV1
from edge.sync.outbox import OutboxContent, OutboxRecord, enqueue, seal_pending
from server.db.protocols import ProtocolNameKey
from server.db.sync import DeviceStatus
from server.ingest.pipeline import Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry
from server.review.fleet import fleet_rows
from server.review.search import SearchParams, search_protocols


def test_a_synced_protocol_is_found_by_its_drivers_name_in_either_script(rig: SyncRig) -> None:
    with rig.device() as session, session.begin():
        enqueue(session, "protocol", protocol_body("N-1"), now=T0)
        enqueue(session, "protocol", protocol_body("N-1", status="paid"), now=T0)
        seal_pending(session, rig.dev.device_id, rig.signer)
    with rig.device() as session:
        payloads = list(session.scalars(select(OutboxContent.payload).join(
            OutboxRecord, OutboxRecord.seq == OutboxContent.seq).order_by(OutboxRecord.seq)))  # fmt: skip
    message = Incoming(up_topic(rig.dev.device_id, "protocol"), encode_batch_message(rig.signer, payloads))
    with rig.server() as session, session.begin():
        assert ingest_batch(session, [message], DeviceRegistry(rig.server), T0).dead_letters == 0
    with rig.server() as session:
        keys = sorted(session.scalars(select(ProtocolNameKey.key).where(ProtocolNameKey.protocol_number == "N-1")))
        assert keys == ["VN", "VNV"], "ИВАН, ИВАНОВ: vowels dropped"
        for typed in ("Иванов", "Ivanov Ivan", "IVANOV"):
            found = search_protocols(session, SearchParams(name=typed))
            assert [f.protocol.number for f in found.rows] == ["N-1"], typed


def test_a_device_status_keeps_the_servers_time_of_arrival_and_the_fleet_shows_the_drift(rig: SyncRig) -> None:
    from datetime import timedelta

    status = DeviceStatusRecordV1(
        battery_pct=64, charging=False, storage_free_bytes=10**9, storage_total_bytes=32 * 10**9, outbox_pending=3,
        outbox_oldest_age_s=12.0, recorder_state="recording", app_version="patrolkit 0.1.0",
        dataset_versions={"tariffs": 7}, measured_at=T0 + timedelta(seconds=95),
    ).to_body()  # the device's clock runs 95 s ahead of the server's
    with rig.device() as session, session.begin():
        enqueue(session, "device_status", status, now=T0)
        seal_pending(session, rig.dev.device_id, rig.signer)
    with rig.device() as session:
        payloads = list(session.scalars(select(OutboxContent.payload)))
    message = Incoming(up_topic(rig.dev.device_id, "device_status"), encode_batch_message(rig.signer, payloads))
    with rig.server() as session, session.begin():
        assert ingest_batch(session, [message], DeviceRegistry(rig.server), T0).dead_letters == 0
    with rig.server() as session:
        stored = session.get(DeviceStatus, rig.dev.device_id)
        assert stored is not None and stored.received_at == T0
        (row,) = [r for r in fleet_rows(session, T0 + timedelta(minutes=1)) if r.device_id == rig.dev.device_id]
    assert row.drift_s == 95.0 and row.battery_pct == 64 and row.outbox_pending == 3
    assert row.datasets == {"tariffs": 7} and row.last_seen is not None
    assert any("clock drift" in p.words for p in row.problems)
