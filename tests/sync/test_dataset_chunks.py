"""Chunked down-sync of large signed datasets: small datasets keep the one-message wire form; a large one goes
in chunks that the device verifies one by one, reassembles and swaps in only when whole and verified, so a
missing, duplicate, forged or reordered chunk never yields a half dataset and the previous version stays."""

from __future__ import annotations

import base64
import json
import queue
import random
import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import T0, SyncRig, wait_for

from core.sync.broker_url import parse_broker_url
from core.sync.control import HeldChunks, SyncRef, ref_topic
from core.sync.datasets import (
    CHUNK_WIRE_VERSION,
    DATASET_CHUNK_BYTES,
    MAX_CHUNKED_DATASET_BYTES,
    MAX_DATASET_BYTES,
    MAX_REF_MESSAGE_BYTES,
    ChunkedManifest,
    DatasetAssembler,
    Manifest,
    RollbackRefused,
    SignedDataset,
    open_dataset,
    open_ref,
    sign_dataset,
)
from core.sync.envelope import EnvelopeError, canonical_json, sha256_hex
from core.sync.signing import DOMAIN_MANIFEST, BadSignature, KeyRing, Signer, Verifier
from edge.sync.datasets import HeldChunk, active_content, active_versions, apply_dataset, restore_chunks
from server.db.sync import SyncDeviceDataset
from server.ingest.datasets import DatasetAnswers, publish_dataset, ref_messages

SERVER = Signer.generate()
RING = KeyRing([Verifier(SERVER.public_raw())])
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def fines(n: int) -> bytes:
    """An unpaid-fines list of ``n`` lines (about 60 bytes each)."""
    return b"".join(b'{"plate":"%06dKZ","protocol":"KZ-%08d","minor":1966000}\n' % (i, i) for i in range(n))


CONTENT = fines(400)  # ~24 KB
CHUNK = 5000  # -> 5 chunks


def chunked(version: int = 2, content: bytes = CONTENT, signer: Signer = SERVER) -> list[bytes]:
    return list(sign_dataset(signer, "unpaid_fines", version, content, NOW, chunk_size=CHUNK).wire_messages())


def fields(message: bytes) -> dict[str, object]:
    obj = json.loads(message)
    return {**obj, "m": json.loads(base64.b64decode(obj["m"]))}


def install_v1(device: sessionmaker[Session], content: bytes = b"old list") -> None:
    with device() as s, s.begin():
        apply_dataset(s, sign_dataset(SERVER, "unpaid_fines", 1, content, NOW).to_wire(), RING, NOW)


def feed(device: sessionmaker[Session], chunks: DatasetAssembler, messages: list[bytes]) -> list[object]:
    """Apply each message in its own transaction, as the sender does; the outcome or exception of each."""
    out: list[object] = []
    for m in messages:
        try:
            with device() as s, s.begin():
                out.append(apply_dataset(s, m, RING, NOW, chunks))
        except (EnvelopeError, BadSignature, RollbackRefused) as exc:
            out.append(exc)
    return out


def in_use(device: sessionmaker[Session]) -> tuple[int, bytes] | None:
    with device() as s:
        return active_content(s, "unpaid_fines")


# --- wire forms ---
def test_small_dataset_keeps_the_single_message_wire_form() -> None:
    signed = sign_dataset(SERVER, "tariffs", 3, b'{"mrp":3932}', NOW)
    messages = list(signed.wire_messages())
    assert messages == [signed.to_wire()]
    obj = json.loads(messages[0])
    assert set(obj) == {"v", "m", "s", "k", "c"} and obj["v"] == 1
    assert set(json.loads(signed.manifest_bytes)) == {
        "dataset", "version", "valid_from", "sha256", "size", "created_at"
    }  # fmt: skip
    assert open_dataset(messages[0], RING)[1].content == b'{"mrp":3932}'
    at_limit = sign_dataset(SERVER, "tariffs", 4, b"x" * MAX_DATASET_BYTES, NOW)
    assert isinstance(at_limit.manifest, Manifest) and len(list(at_limit.wire_messages())) == 1


def test_large_dataset_goes_in_signed_chunks_that_each_name_their_place() -> None:
    content = fines(40_000)  # ~2.4 MB
    assert len(content) > 2 * MAX_DATASET_BYTES
    signed = sign_dataset(SERVER, "unpaid_fines", 7, content, NOW)
    manifest = signed.manifest
    assert isinstance(manifest, ChunkedManifest) and manifest.chunk_size == DATASET_CHUNK_BYTES
    messages = list(signed.wire_messages())
    assert len(messages) == manifest.count == -(-len(content) // DATASET_CHUNK_BYTES)
    for i, m in enumerate(messages):
        assert len(m) < MAX_REF_MESSAGE_BYTES
        f = fields(m)
        assert (f["v"], f["i"]) == (CHUNK_WIRE_VERSION, i)
        head = f["m"]
        assert isinstance(head, dict)
        assert (head["dataset"], head["version"], len(head["chunks"])) == ("unpaid_fines", 7, manifest.count)
        assert head["sha256"] == sha256_hex(content) and head["size"] == len(content)
    with pytest.raises(ValueError, match="several messages"):
        signed.to_wire()


def test_sign_dataset_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="limit"):
        sign_dataset(SERVER, "unpaid_fines", 1, b"x" * (MAX_CHUNKED_DATASET_BYTES + 1), NOW)
    with pytest.raises(ValueError, match="chunks, limit"):
        sign_dataset(SERVER, "unpaid_fines", 1, b"x" * 5000, NOW, chunk_size=1)
    with pytest.raises(ValueError, match="empty"):
        sign_dataset(SERVER, "unpaid_fines", 1, b"", NOW, chunk_size=10)
    with pytest.raises(ValueError, match="chunk size"):
        sign_dataset(SERVER, "unpaid_fines", 1, b"abc", NOW, chunk_size=MAX_DATASET_BYTES + 1)


# --- the device ---
def test_reordered_and_duplicate_chunks_make_exactly_one_swap_at_the_last_chunk(
    device_sessions: sessionmaker[Session],
) -> None:
    install_v1(device_sessions)
    messages = chunked()
    order = [3, 0, 3, 4, 1, 0, 2, 2, 4]  # every chunk, shuffled, some twice
    chunks = DatasetAssembler()
    outcomes = feed(device_sessions, chunks, [messages[i] for i in order])
    assert [type(o).__name__ for o in outcomes[:6]] == ["NoneType"] * 6
    assert in_use(device_sessions) is not None
    applied = outcomes[6]
    assert getattr(applied, "version", None) == 2
    assert in_use(device_sessions) == (2, CONTENT)
    assert all(isinstance(o, RollbackRefused) for o in outcomes[7:])  # late duplicates of the applied version
    assert chunks.pending() == {}


def test_missing_chunk_never_swaps_and_the_previous_version_stays_in_use(
    device_sessions: sessionmaker[Session],
) -> None:
    install_v1(device_sessions, b"old list")
    messages = chunked()
    chunks = DatasetAssembler()
    assert feed(device_sessions, chunks, messages[:2] + messages[3:]) == [None] * 4
    assert in_use(device_sessions) == (1, b"old list")
    with device_sessions() as s:
        assert active_versions(s) == {"unpaid_fines": 1}
    assert chunks.pending() == {"unpaid_fines": (2, 4, 5)}
    # the server resends every chunk on the next connect: the gap fills and the version swaps in
    outcomes = feed(device_sessions, chunks, messages)
    assert [getattr(o, "version", o) for o in outcomes].count(2) == 1
    assert in_use(device_sessions) == (2, CONTENT)


def test_forged_chunks_are_refused_on_arrival_and_leave_the_slot_for_the_genuine_one(
    device_sessions: sessionmaker[Session],
) -> None:
    install_v1(device_sessions, b"old list")
    genuine = chunked()
    chunks = DatasetAssembler()
    feed(device_sessions, chunks, genuine[:2])

    obj = json.loads(genuine[2])
    data = bytearray(base64.b64decode(obj["c"]))
    data[10] ^= 1
    wrong_bytes = canonical_json({**obj, "c": base64.b64encode(bytes(data)).decode()})
    other_key = chunked(signer=Signer.generate())[2]  # signed by a key the device does not pin
    head = json.loads(base64.b64decode(obj["m"]))
    bumped = canonical_json({**obj, "m": base64.b64encode(canonical_json({**head, "version": 9})).decode()})
    moved = canonical_json({**obj, "i": 3})  # chunk 2's bytes presented as chunk 3
    out_of_range = canonical_json({**obj, "i": 5})
    not_int = canonical_json({**obj, "i": "2"})
    outcomes = feed(device_sessions, chunks, [wrong_bytes, other_key, bumped, moved, out_of_range, not_int])
    assert [type(o).__name__ for o in outcomes] == ["EnvelopeError", "BadSignature", "BadSignature"] + [
        "EnvelopeError"
    ] * 3
    assert "do not match the signed chunk hash" in str(outcomes[0]) and "outside 0..4" in str(outcomes[4])
    assert chunks.pending() == {"unpaid_fines": (2, 2, 5)}  # nothing forged was kept
    assert in_use(device_sessions) == (1, b"old list")
    feed(device_sessions, chunks, genuine[2:])
    assert in_use(device_sessions) == (2, CONTENT)


def test_inconsistent_signed_manifest_never_yields_a_dataset(device_sessions: sessionmaker[Session]) -> None:
    """Chunks that match their hashes but not the whole sha256 (a server bug): refused at the end, nothing swapped."""
    install_v1(device_sessions, b"old list")
    good = sign_dataset(SERVER, "unpaid_fines", 2, CONTENT, NOW, chunk_size=CHUNK)
    head = json.loads(good.manifest_bytes)
    bad_head = canonical_json({**head, "sha256": sha256_hex(b"something else")})
    bad = SignedDataset(bad_head, SERVER.sign(DOMAIN_MANIFEST, bad_head), SERVER.kid, CONTENT)
    chunks = DatasetAssembler()
    outcomes = feed(device_sessions, chunks, list(bad.wire_messages()))
    assert outcomes[:-1] == [None] * 4 and "content does not match its manifest" in str(outcomes[-1])
    assert in_use(device_sessions) == (1, b"old list") and chunks.pending() == {}


def test_versions_never_go_back_and_a_newer_version_replaces_a_partial_one(
    device_sessions: sessionmaker[Session],
) -> None:
    install_v1(device_sessions, b"old list")
    chunks = DatasetAssembler()
    v2, v3 = chunked(2), chunked(3, CONTENT + b"more\n")
    feed(device_sessions, chunks, v2[:3])
    feed(device_sessions, chunks, v3[:1])  # newer version: the partial v2 is dropped
    assert chunks.pending() == {"unpaid_fines": (3, 1, 5)}
    late_v2 = feed(device_sessions, chunks, v2[3:])
    assert all(isinstance(o, RollbackRefused) for o in late_v2)
    feed(device_sessions, chunks, v3[1:])
    assert in_use(device_sessions) == (3, CONTENT + b"more\n")
    assert all(isinstance(o, RollbackRefused) for o in feed(device_sessions, chunks, chunked(3)[:1]))
    # the same version with a second, different manifest is refused while the first is being received
    v4a, v4b = chunked(4, b"a" * 12000), chunked(4, b"b" * 12000)
    feed(device_sessions, chunks, v4a[:1])
    (conflict,) = feed(device_sessions, chunks, v4b[:1])
    assert isinstance(conflict, EnvelopeError) and conflict.reason == "conflict"
    assert chunks.pending() == {"unpaid_fines": (4, 1, 3)}


def test_wire_forms_cannot_be_mixed_up() -> None:
    small = sign_dataset(SERVER, "tariffs", 2, b"{}", NOW)
    big = sign_dataset(SERVER, "unpaid_fines", 2, CONTENT, NOW, chunk_size=CHUNK)
    v1_with_chunked_head = canonical_json(
        {"v": 1, "m": base64.b64encode(big.manifest_bytes).decode(), "s": base64.b64encode(big.sig).decode(),
         "k": big.kid, "c": base64.b64encode(CONTENT).decode()}
    )  # fmt: skip
    with pytest.raises(EnvelopeError, match="cannot travel as one v1 message"):
        open_ref(v1_with_chunked_head, RING)
    v2_with_plain_head = canonical_json({**json.loads(small.to_wire()), "v": 2, "i": 0})
    with pytest.raises(EnvelopeError, match="needs a chunked manifest"):
        open_ref(v2_with_plain_head, RING)
    with pytest.raises(EnvelopeError, match="unknown"):
        open_ref(canonical_json({**json.loads(small.to_wire()), "v": 9}), RING)
    with pytest.raises(EnvelopeError, match="a dataset chunk where a whole dataset was expected"):
        open_dataset(next(big.wire_messages()), RING)


def test_device_without_an_assembler_refuses_chunks_and_writes_nothing(
    device_sessions: sessionmaker[Session],
) -> None:
    with device_sessions() as s, s.begin(), pytest.raises(EnvelopeError, match="no assembler"):
        apply_dataset(s, chunked()[0], RING, NOW)
    with device_sessions() as s:
        assert active_versions(s) == {}


# --- end to end: server -> broker -> real device sender ---
def test_large_unpaid_fines_list_reaches_the_device_through_the_broker_in_chunks(rig: SyncRig) -> None:
    big = fines(30_000)  # ~1.8 MB: more than one MQTT message may carry under our limit
    random.Random(6).shuffle(lines := big.splitlines(keepends=True))
    big = b"".join(lines)
    assert len(big) > MAX_DATASET_BYTES
    with rig.server() as s, s.begin():
        publish_dataset(s, rig.server_signer, "tariffs", b'{"mrp_minor":432500}', T0)
        signed = publish_dataset(s, rig.server_signer, "unpaid_fines", big, T0)
    assert signed.chunked and len(list(signed.wire_messages())) == 4
    rig.worker()
    rig.sender()

    def device_has() -> dict[str, int]:
        with rig.device() as s:
            return active_versions(s)

    wait_for(lambda: device_has() == {"tariffs": 1, "unpaid_fines": 1}, what="both datasets applied")
    with rig.device() as s:
        assert active_content(s, "unpaid_fines") == (1, big)
        assert active_content(s, "tariffs") == (1, b'{"mrp_minor":432500}')

    def reported() -> set[tuple[str, int]]:
        with rig.server() as s:
            rows = s.execute(
                select(SyncDeviceDataset.dataset, SyncDeviceDataset.version).where(
                    SyncDeviceDataset.device_id == rig.dev.device_id
                )
            )
            return {(d, v) for d, v in rows}

    wait_for(lambda: ("unpaid_fines", 1) in reported(), what="device reports the chunked version in use")


# --- resume: after a lost link only the missing chunks come again ---
def _chunk_indexes(messages: list[bytes]) -> list[int]:
    return [int(json.loads(m)["i"]) for m in messages]


def test_a_sync_ref_naming_held_chunks_gets_only_the_others(rig: SyncRig) -> None:
    with rig.server() as s, s.begin():
        signed = publish_dataset(s, rig.server_signer, "unpaid_fines", fines(30_000), T0)
    count = len(list(signed.wire_messages()))
    assert count == 4
    dev = rig.dev.device_id
    with rig.server() as s:
        resume = SyncRef(dev=dev, have={}, partial={"unpaid_fines": HeldChunks(version=1, chunks=[0, 2])})
        assert _chunk_indexes(ref_messages(s, resume)) == [1, 3]
        older = SyncRef(dev=dev, have={}, partial={"unpaid_fines": HeldChunks(version=7, chunks=[0, 1, 2])})
        assert _chunk_indexes(ref_messages(s, older)) == [0, 1, 2, 3]  # chunks of another version: all again
        assert _chunk_indexes(ref_messages(s, SyncRef(dev=dev, have={}))) == [0, 1, 2, 3]
        assert ref_messages(s, SyncRef(dev=dev, have={"unpaid_fines": 1})) == []
        # one read answers a batch's refs: each device still gets only what it lacks, in any order of asking
        answers = DatasetAnswers(s)
        refs = [resume, SyncRef(dev=dev, have={"unpaid_fines": 1}), SyncRef(dev=dev, have={}), resume, older]
        assert [_chunk_indexes(answers.messages(r)) for r in refs] == [[1, 3], [], [0, 1, 2, 3], [1, 3], [0, 1, 2, 3]]


def test_a_device_restarted_mid_download_gets_only_the_missing_chunks_through_the_broker(rig: SyncRig) -> None:
    """Two of four chunks arrived, then the device restarted: the new sender restores them from the
    database, its sync_ref names them, the server sends the other two, and the whole list is swapped in."""
    big = fines(30_000)
    with rig.server() as s, s.begin():
        signed = publish_dataset(s, rig.server_signer, "unpaid_fines", big, T0)
    ring = KeyRing([Verifier(rig.server_signer.public_raw())])
    before_restart = DatasetAssembler()
    for message in list(signed.wire_messages())[:2]:
        with rig.device() as s, s.begin():
            assert apply_dataset(s, message, ring, NOW, before_restart) is None
    seen: queue.Queue[int] = queue.Queue()
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"spy-{rig.dev.device_id}")
    spy.on_message = lambda _c, _u, m: seen.put(int(json.loads(m.payload)["i"]))
    subscribed = threading.Event()
    spy.on_connect = lambda c, *_a: c.subscribe(ref_topic(rig.dev.device_id), qos=1)
    spy.on_subscribe = lambda *_a: subscribed.set()
    spy.username_pw_set("test-observer", rig.accounts.observer_password)  # may read every device's topics
    addr = parse_broker_url(rig.mqtt_url)
    spy.connect(addr.host, addr.port)
    spy.loop_start()
    try:
        assert subscribed.wait(10)
        rig.worker()
        rig.sender()  # a new process: nothing in memory
        wait_for(lambda: in_use(rig.device) == (1, big), what="the list swapped in from the restored chunks")
        got = sorted(seen.get(timeout=10) for _ in range(2))
        assert got == [2, 3]
        assert seen.empty(), "a chunk the device held was sent again"
        with rig.device() as s:
            assert s.scalar(select(func.count()).select_from(HeldChunk)) == 0  # freed once swapped in
    finally:
        spy.disconnect()
        spy.loop_stop()


def test_restored_chunks_are_verified_again_and_stale_ones_dropped(device_sessions: sessionmaker[Session]) -> None:
    messages = chunked(version=2)
    first = DatasetAssembler()
    assert feed(device_sessions, first, messages[:3]) == [None, None, None]
    with device_sessions() as s, s.begin():  # the disk flipped a byte of chunk 1
        row = s.get_one(HeldChunk, ("unpaid_fines", 1))
        row.message = row.message.replace(b'"i":1', b'"i":4')
    again = DatasetAssembler()
    with device_sessions() as s, s.begin():
        assert restore_chunks(s, RING, again) == 2
    assert again.held() == {"unpaid_fines": (2, [0, 2])}
    with device_sessions() as s:
        assert sorted(s.scalars(select(HeldChunk.idx))) == [0, 2]  # the bad one is gone
    assert feed(device_sessions, again, [messages[1], messages[3], messages[4]])[-1] is not None
    assert in_use(device_sessions) == (2, CONTENT)
    with device_sessions() as s:
        assert s.scalar(select(func.count()).select_from(HeldChunk)) == 0

    # chunks of a version that is no longer newer than the one in use are dropped at load
    stale = chunked(version=2)[:1]
    with device_sessions() as s, s.begin():
        s.add(HeldChunk(dataset="unpaid_fines", idx=0, version=2, message=stale[0]))
    late = DatasetAssembler()
    with device_sessions() as s, s.begin():
        assert restore_chunks(s, RING, late) == 0
    assert late.held() == {}
