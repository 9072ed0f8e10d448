"""One message must never stop sync: each poison message found by attacking the running system is published
through the broker, as the device's own account would (the only one the ACL lets write there), then a valid
record from the real device sender. The valid record is stored and acked, every poison message is dead-lettered
with its reason, and none comes back when the ingest worker restarts on its persistent session
(``clean_session=False``, the same client id): each was acknowledged to the broker."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select
from sync_harness import T0, SyncRig, protocol_body, publish_as, wait_for

from core.sync.control import req_topic, up_topic
from core.sync.envelope import canonical_json, encode_batch_message, make_payload
from core.sync.records import CURRENT_VERSION
from core.sync.signing import DOMAIN_REQUEST, Signer, b64e
from edge.sync.outbox import enqueue
from server.db.protocols import Protocol
from server.db.sync import SyncDeadLetter, SyncInbox


def signed_record(signer: Signer, dev: str, *, seq: int = 1, epoch: str = "poison-epoch",
                  body: dict[str, object] | None = None) -> bytes:  # fmt: skip
    """A v3 message with one record that the device's key really signed."""
    payload = make_payload(dev=dev, epoch=epoch, seq=seq, record_id=str(uuid.uuid4()), stream="protocol", sv=CURRENT_VERSION["protocol"],
                           ts=T0, prev="", refs={}, body=body or protocol_body(f"P-{uuid.uuid4().hex[:8]}"))  # fmt: skip
    return encode_batch_message(signer, [payload])


def signed_request(signer: Signer, body: dict[str, object]) -> bytes:
    """A device request signed by the device's key, its JSON written by hand (no encoder refuses it)."""
    payload = json.dumps(body, sort_keys=True).encode()
    sig = signer.sign(DOMAIN_REQUEST, payload)
    return canonical_json({"k": signer.kid, "p": b64e(payload), "s": b64e(sig), "v": 1})


def dead_letters(rig: SyncRig) -> Counter[str]:
    with rig.server() as s:
        return Counter(s.scalars(select(SyncDeadLetter.reason)))


def stored(rig: SyncRig, number: str) -> bool:
    with rig.server() as s:
        return s.get(Protocol, number) is not None


BIG = bytes(range(256)) * 4096  # 1 MiB of junk: kept as its first 64 KiB, with its size and SHA-256


def poison_messages(rig: SyncRig) -> dict[str, tuple[str, bytes, str | None]]:
    """Each attack: (topic, payload, the dead letter's reason; None where the embedded broker's ACL drops it
    before the ingest sees it)."""
    dev, signer = rig.dev.device_id, rig.signer
    fine_units = protocol_body("P-FINE-UNITS")
    fine_units["fine_units"] = 2**63
    hello = {"type": "hello", "dev": dev, "epoch": "e", "max_seq": 2**70, "ts": T0.isoformat()}
    up = up_topic(dev, "protocol")
    return {
        "deep_nesting": (up, b"[" * 100_000, "malformed"),  # RecursionError in the JSON decoder
        "seq_2^64-1": (
            up,
            signed_record(signer, dev, seq=2**64 - 1),
            "out_of_range",
        ),  # beyond SQLite's INTEGER
        "seq_2^63": (up, signed_record(signer, dev, seq=2**63), "out_of_range"),  # beyond PostgreSQL's BIGINT
        "fine_units_2^63": (up, signed_record(signer, dev, seq=7, body=fine_units), "out_of_range"),
        "hello_max_seq_2^70": (req_topic(dev), signed_request(signer, hello), "out_of_range"),
        "epoch_65_chars": (up, signed_record(signer, dev, seq=8, epoch="E" * 65), "out_of_range"),
        "device_id_65_chars": (
            up_topic("D" * 65, "protocol"),
            signed_record(signer, dev, seq=9),
            "bad_topic",
        ),
        "1_MiB": (up, BIG, "oversized"),
    }


POISON = ["deep_nesting", "seq_2^64-1", "seq_2^63", "fine_units_2^63", "hello_max_seq_2^70", "epoch_65_chars",
          "device_id_65_chars", "1_MiB"]  # fmt: skip


@pytest.mark.parametrize("attack", POISON)
def test_a_poison_message_is_dead_lettered_and_the_next_record_is_stored_and_acked(
    rig: SyncRig, attack: str
) -> None:
    topic, payload, reason = poison_messages(rig)[attack]
    worker = rig.worker()
    publish_as(rig.mqtt_url, rig.dev.mqtt_username, rig.dev.mqtt_password, [(topic, payload)])
    with rig.device() as s, s.begin():
        enqueue(s, "protocol", protocol_body("VALID-1"), now=T0)
    rig.sender()
    wait_for(
        lambda: rig.pending() == 0, timeout=30, what="the valid record stored and acked after the poison"
    )
    assert stored(rig, "VALID-1")
    if attack == "device_id_65_chars" and dead_letters(rig) == Counter():
        assert not os.environ.get("PATROLKIT_TEST_MQTT_URL")  # only the embedded broker's ACL drops it
    else:
        wait_for(
            lambda: dead_letters(rig) == Counter({reason: 1}), timeout=15, what=f"a {reason} dead letter"
        )
    assert worker.alive and worker.health() == "ok"


def test_poison_messages_do_not_come_back_when_the_worker_restarts_on_its_persistent_session(
    rig: SyncRig,
) -> None:
    client_id = f"ingest-poison-{uuid.uuid4().hex[:8]}"
    worker = rig.worker(client_id=client_id)
    attacks = poison_messages(rig)
    publish_as(
        rig.mqtt_url, rig.dev.mqtt_username, rig.dev.mqtt_password, [(t, p) for t, p, _r in attacks.values()]
    )
    with rig.device() as s, s.begin():
        enqueue(s, "protocol", protocol_body("VALID-1"), now=T0)
    rig.sender()
    wait_for(
        lambda: rig.pending() == 0, timeout=30, what="the valid record stored and acked after the poison"
    )
    expected = Counter(r for _t, _p, r in attacks.values()) - Counter({"bad_topic": 1})
    # the embedded broker's ACL drops the 65-character topic (no account may write there); a broker without
    # an ACL hands it to the ingest, which refuses it
    wait_for(
        lambda: dead_letters(rig) - Counter({"bad_topic": 1}) == expected, timeout=15, what="dead letters"
    )
    with rig.server() as s:
        (kept, size, digest) = s.execute(
            select(SyncDeadLetter.data, SyncDeadLetter.size_bytes, SyncDeadLetter.sha256).where(
                SyncDeadLetter.reason == "oversized"
            )
        ).one()
        details = " | ".join(s.scalars(select(SyncDeadLetter.detail)))
    assert (bytes(kept), size, digest) == (BIG[: 64 * 1024], len(BIG), hashlib.sha256(BIG).hexdigest())
    for named in ("seq", "fine_units", "max_seq", "epoch", "nests deeper"):
        assert named in details, f"no dead letter names {named!r}: {details}"
    before = dead_letters(rig)

    worker.stop()  # the same client id again: the broker resumes its session, with nothing unacked in it
    rig.workers.remove(worker)
    rig.worker(client_id=client_id)
    with rig.device() as s, s.begin():
        enqueue(s, "protocol", protocol_body("VALID-2"), now=T0)
    wait_for(lambda: rig.pending() == 0, timeout=30, what="a record after the restart")
    assert stored(rig, "VALID-2")
    assert dead_letters(rig) == before  # no poison message came back
    with rig.server() as s:
        assert s.scalar(select(func.count()).select_from(SyncInbox)) == 2
