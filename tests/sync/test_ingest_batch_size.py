"""How much one ingest transaction takes: at most ``batch_max`` messages and ``batch_max_bytes`` of payload (a
message larger than that alone), so a fleet's burst is stored and acked in steady steps instead of one
transaction of tens of thousands of records that holds every ack back until it commits."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from sync_harness import SyncRig

from core.sync.signing import Signer
from server.ingest.worker import IngestSettings, IngestWorker


def worker(rig: SyncRig, **settings: int) -> IngestWorker:
    """A worker that is never started: only its inbox and its batching are used."""
    return IngestWorker(
        IngestSettings(mqtt_url="mqtt://127.0.0.1:1", batch_wait_s=0.0, **settings),  # type: ignore[arg-type]
        rig.server,
        Signer.generate(),
    )


def queue(w: IngestWorker, sizes: list[int]) -> None:
    for n, size in enumerate(sizes):
        msg = mqtt.MQTTMessage(mid=n + 1, topic=b"pk/v1/PD-1/up/records")
        msg.payload = b"x" * size
        w._inbox.put((0.0, msg))


def taken(w: IngestWorker) -> list[list[int]]:
    out = []
    while batch := w._collect():
        out.append([len(m.payload) for _t, m in batch])
    return out


def test_a_transaction_stops_taking_messages_once_their_bytes_reach_the_limit(rig: SyncRig) -> None:
    w = worker(rig, batch_max=500, batch_max_bytes=1000)
    queue(w, [400, 400, 400, 400, 100])
    assert taken(w) == [[400, 400, 400], [400, 100]]


def test_a_message_over_the_byte_limit_is_taken_alone(rig: SyncRig) -> None:
    w = worker(rig, batch_max=500, batch_max_bytes=1000)
    queue(w, [5000, 10, 10])
    assert taken(w) == [[5000], [10, 10]]


def test_the_message_count_limit_still_holds_for_small_messages(rig: SyncRig) -> None:
    w = worker(rig, batch_max=3, batch_max_bytes=1 << 20)
    queue(w, [10] * 7)
    assert taken(w) == [[10, 10, 10], [10, 10, 10], [10]]
