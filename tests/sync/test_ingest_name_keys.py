"""The ingest stores a protocol's driver name as search keys (``core.name_search``), once, so the workspace
finds the stop by the name typed in Cyrillic or Latin letters; a later record of the protocol (its status)
adds none."""

from __future__ import annotations

from sqlalchemy import select
from sync_harness import T0, SyncRig, protocol_body

from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message
from edge.sync.outbox import OutboxContent, OutboxRecord, enqueue, seal_pending
from server.db.protocols import ProtocolNameKey
from server.ingest.pipeline import Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry
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
