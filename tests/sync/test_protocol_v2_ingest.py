"""Protocol records v2 (what the officer app adds: the driver's phone and agreement) reach the server's
protocol row, a later record of the protocol changes them, and a v1 record from an older device still is read
(with them empty)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sync_harness import T0, SyncRig, protocol_body
from test_ingest_batches import ingest, outbox_messages, queue

from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message, make_payload
from core.sync.records import ProtocolRecordV1
from edge.sync.outbox import OutboxRecord
from server.db.fines import Fine
from server.db.protocols import Protocol
from server.ingest.pipeline import Incoming


def test_phone_and_agreement_reach_the_server_and_later_records_update_them(rig: SyncRig) -> None:
    queue(rig, ("protocol", protocol_body("V2-1")))
    queue(rig, ("protocol", {**protocol_body("V2-1"), "driver_phone": "+77011234567"}))
    agreed = {**protocol_body("V2-1"), "driver_phone": "+77011234567",
              "driver_agreed_at": (T0 + timedelta(minutes=2)).isoformat(), "driver_agreed_language": "kk"}  # fmt: skip
    queue(rig, ("protocol", agreed))
    with rig.device() as session:
        assert set(session.scalars(select(OutboxRecord.sv))) == {2}

    outcome = ingest(rig, outbox_messages(rig))
    assert [a.status for a in outcome.acks[rig.dev.device_id]] == ["ok", "ok", "ok"]
    with rig.server() as session:
        row = session.get(Protocol, "V2-1")
        assert row is not None and row.driver_phone == "+77011234567"
        assert row.driver_agreed_at == T0 + timedelta(minutes=2) and row.driver_agreed_language == "kk"
        fine = session.scalar(select(Fine).where(Fine.number == "V2-1"))
        assert fine is not None and fine.phone == "+77011234567"  # notices go to the phone the officer typed


def test_a_v1_protocol_is_still_read_with_no_phone(rig: SyncRig) -> None:
    body = ProtocolRecordV1(**{k: v for k, v in protocol_body("V1-1").items() if not k.startswith("driver_") or k in ("driver_name", "driver_iin")}).to_body()
    v1 = make_payload(dev=rig.dev.device_id, epoch="old-app", seq=1, record_id=str(uuid.uuid4()), stream="protocol",
                      sv=1, ts=T0, prev="", refs={}, body=body)  # fmt: skip
    half = {**protocol_body("V1-2"), "driver_agreed_language": "ru"}  # an agreement without its time
    bad = make_payload(dev=rig.dev.device_id, epoch="old-app", seq=2, record_id=str(uuid.uuid4()), stream="protocol",
                       sv=2, ts=T0, prev="", refs={}, body=half)  # fmt: skip
    topic = up_topic(rig.dev.device_id, "protocol")
    outcome = ingest(rig, [Incoming(topic, encode_batch_message(rig.signer, [v1, bad]))])
    assert sorted((a.seq, a.status) for a in outcome.acks[rig.dev.device_id]) == [(1, "ok"), (2, "rejected")]
    with rig.server() as session:
        row = session.get(Protocol, "V1-1")
        assert row is not None and row.driver_phone is None and row.driver_agreed_at is None
        assert session.get(Protocol, "V1-2") is None
