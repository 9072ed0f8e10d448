"""Forged, tampered, misdirected, replayed, malformed, oversized and unknown-version messages: each is rejected
or deduplicated, recorded, and leaves the business tables untouched. Also: two workers, down-sync."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import func, select
from sync_harness import T0, SyncRig, fill_outbox, payment_body, protocol_body, publish_as, wait_for

from core.sync.control import up_topic
from core.sync.datasets import sign_dataset
from core.sync.envelope import batch_manifest, encode_batch_message, frame_batch, make_payload
from core.sync.signing import DOMAIN_BATCH, Signer
from edge.sync.datasets import active_versions
from edge.sync.outbox import OutboxContent, OutboxRecord, enqueue
from server.commands.device import add_device
from server.db.protocols import Payment, Protocol
from server.db.sync import SyncDeadLetter, SyncDeviceDataset, SyncInbox
from server.ingest.datasets import publish_dataset


def publish_raw(rig: SyncRig, messages: list[tuple[str, bytes]]) -> None:
    """Publish as the device's own broker account (its stolen credentials): the only account the broker's
    ACL lets write on its topics."""
    publish_as(rig.mqtt_url, rig.dev.mqtt_username, rig.dev.mqtt_password, messages)


def publish_as_ingest(rig: SyncRig, topic: str, data: bytes) -> None:
    """Publish as the ingest's account: the only one the ACL lets write on a device's down topics."""
    publish_as(rig.mqtt_url, "ingest-svc", rig.accounts.ingest_password, [(topic, data)],
               client_id=f"forger-{uuid.uuid4().hex[:6]}")  # fmt: skip


def counts(rig: SyncRig) -> tuple[int, int, int, int]:
    with rig.server() as s:
        return tuple(  # type: ignore[return-value]
            int(s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (SyncInbox, Protocol, Payment, SyncDeadLetter)
        )


def dead_reasons(rig: SyncRig) -> list[str]:
    with rig.server() as s:
        return sorted(s.scalars(select(SyncDeadLetter.reason)))


def record(rig: SyncRig, signer: Signer, seq: int, body: dict[str, object], sv: int = 1, stream: str = "payment",
           dev: str | None = None) -> bytes:  # fmt: skip
    """An up-message of one record, signed by ``signer``."""
    payload = make_payload(dev=dev or rig.dev.device_id, epoch="attack-epoch", seq=seq, record_id=str(uuid.uuid4()),
                           stream=stream, sv=sv, ts=T0, prev="", refs={}, body=body)  # fmt: skip
    return encode_batch_message(signer, [payload])


def test_attacks_are_rejected_recorded_and_change_no_business_table(rig: SyncRig) -> None:
    with rig.server() as s, s.begin():
        other = add_device(s, f"PD-other-{uuid.uuid4().hex[:6]}", T0)
    fill_outbox(rig.device, 20)
    rig.worker()
    rig.sender()
    wait_for(lambda: rig.pending() == 0, what="baseline synced")
    before = counts(rig)
    topic = up_topic(rig.dev.device_id, "payment")
    good_payload = make_payload(dev=rig.dev.device_id, epoch="attack-epoch", seq=1, record_id=str(uuid.uuid4()),
                                stream="payment", sv=1, ts=T0, prev="", refs={},
                                body=payment_body(str(uuid.uuid4()), "N0"))  # fmt: skip
    good_sig = rig.signer.sign(DOMAIN_BATCH, batch_manifest([good_payload]))
    forger = Signer.generate()
    forged = frame_batch(rig.signer.kid, forger.sign(DOMAIN_BATCH, batch_manifest([good_payload])), [good_payload])
    tampered = frame_batch(rig.signer.kid, good_sig, [good_payload.replace(b"1966000", b"1")])
    other_rec = record(rig, Signer.from_b64(other.private_key_b64), 2, payment_body(str(uuid.uuid4()), "N0"),
                       dev=other.device_id)  # fmt: skip
    future = record(rig, rig.signer, 3, {"amount": 1}, sv=9)
    with rig.device() as s:
        first = s.scalars(select(OutboxRecord).where(OutboxRecord.seq == 1)).one()
        content = s.get_one(OutboxContent, 1)
    replay = encode_batch_message(rig.signer, [content.payload or b""])  # a record already synced, sent again
    publish_raw(rig, [
        (topic, forged),
        (topic, tampered),
        (topic, other_rec),  # another device's record on this topic
        (topic, b"PDS\x03\x01"),  # malformed
        (topic, b"{" + b" " * (600 * 1024) + b"}"),  # oversized
        (topic, future),  # unknown record version
        (topic, b'{"v":1,"records":[]}'),  # a wire version no device sends
        (up_topic(rig.dev.device_id, first.record_type), replay),
    ])  # fmt: skip
    expected = ["bad_signature", "bad_signature", "malformed", "oversized", "unknown_version", "unknown_version",
                "wrong_device"]  # fmt: skip
    wait_for(lambda: len(dead_reasons(rig)) >= len(expected), what="dead letters recorded")
    assert dead_reasons(rig) == expected
    inbox, protocols, payments, _ = counts(rig)
    assert (inbox, protocols, payments) == before[:3]  # the replay was a duplicate, nothing else got in


def test_two_ingest_workers_at_once_store_each_record_once(rig: SyncRig) -> None:
    fill_outbox(rig.device, 1000)
    shared = bool(os.environ.get("PATROLKIT_TEST_MQTT_URL"))  # amqtt has no $share: both then get everything
    rig.worker(1, shared=shared)
    rig.worker(2, shared=shared)
    rig.sender(window=200, batch=25, ack_timeout_s=2.0, backoff_max_s=4.0)
    wait_for(lambda: rig.pending() == 0, what="outbox drained by two workers")
    with rig.server() as s:
        seqs = list(s.scalars(select(SyncInbox.seq)))
    assert sorted(seqs) == list(range(1, 1001))
    assert counts(rig)[1:3] == (100, 100)


def test_dataset_published_while_offline_is_applied_on_reconnect_and_rollback_refused(rig: SyncRig) -> None:
    with rig.server() as s, s.begin():
        publish_dataset(s, rig.server_signer, "tariffs", b'{"mrp_minor":393200}', T0)
        publish_dataset(s, rig.server_signer, "tariffs", b'{"mrp_minor":432500}', T0)
    rig.worker()
    sender = rig.sender()
    wait_for(lambda: _versions(rig) == {"tariffs": 2}, what="tariffs v2 applied")
    with rig.server() as s:
        wait_for(lambda: _reported(rig) == 2, what="device reports the version in use")
    old = sign_dataset(rig.server_signer, "tariffs", 1, b'{"mrp_minor":393200}', T0)
    from core.sync.control import ref_topic

    publish_as_ingest(rig, ref_topic(rig.dev.device_id), old.to_wire())
    forged = sign_dataset(Signer.generate(), "tariffs", 99, b"{}", T0)
    publish_as_ingest(rig, ref_topic(rig.dev.device_id), forged.to_wire())
    with rig.device() as s, s.begin():
        enqueue(s, "protocol", protocol_body("AFTER-1"), now=T0)
    wait_for(lambda: rig.pending() == 0, what="record synced")
    assert _versions(rig) == {"tariffs": 2}  # neither the rollback nor the forgery was applied
    with rig.device() as s:
        refs = s.scalars(select(OutboxRecord.refs).where(OutboxRecord.state == "acked")).all()
    assert refs == ['{"tariffs":2}']  # the record carries the dataset version it used
    assert sender.online


def _versions(rig: SyncRig) -> dict[str, int]:
    with rig.device() as s:
        return active_versions(s)


def _reported(rig: SyncRig) -> int | None:
    with rig.server() as s:
        return s.scalar(
            select(SyncDeviceDataset.version).where(SyncDeviceDataset.device_id == rig.dev.device_id)
        )


@pytest.mark.parametrize("stream", ["payment"])
def test_invalid_body_from_the_real_device_is_acked_rejected_and_kept(rig: SyncRig, stream: str) -> None:
    bad = record(rig, rig.signer, 5, {"amount_minor": -5}, stream=stream)
    rig.worker()
    publish_raw(rig, [(up_topic(rig.dev.device_id, stream), bad)])
    wait_for(lambda: dead_reasons(rig) == ["invalid_body"], what="invalid body dead-lettered")
    assert counts(rig)[:3] == (0, 0, 0)
