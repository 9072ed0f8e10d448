"""Ingest of v2 messages (one signature per batch of records) and of the business rules around them, driven
directly through ``ingest_batch`` and ``apply_acks`` (no broker): batch proofs, forged or tampered batches,
a second payment for an already-paid protocol, bookmark versions, and acks that free exactly their rows."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar, cast

from sqlalchemy import Table, event, func, select
from sqlalchemy.orm import ORMExecuteState, Session
from sync_harness import T0, SyncRig, payment_body, protocol_body, segment_body

from core.sync.control import AckItem, Hello, req_topic, seal, up_topic
from core.sync.envelope import (
    SignedBatch,
    batch_manifest,
    decode_up,
    encode_batch_message,
    frame_batch,
    make_payload,
    parse_payload,
)
from core.sync.records import Bookmark, BookmarkRecordV1
from core.sync.signing import DOMAIN_BATCH, DOMAIN_REQUEST, Signer, Verifier
from edge.sync.outbox import OutboxContent, OutboxRecord, RowHash, apply_acks, enqueue, seal_pending
from server.commands.device import add_device
from server.db.protocols import Payment, Protocol
from server.db.sync import Bookmark as ServerBookmark
from server.db.sync import DeviceStatus, SyncBatch, SyncConflict, SyncDeadLetter, SyncInbox, SyncStream
from server.db.sync import SegmentMeta as ServerSegment
from server.ingest.pipeline import BatchOutcome, Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry

A = TypeVar("A")
B = TypeVar("B")


def ingest(rig: SyncRig, messages: list[Incoming]) -> BatchOutcome:
    with rig.server() as session, session.begin():
        return ingest_batch(session, messages, DeviceRegistry(rig.server), T0)


def outbox_messages(rig: SyncRig, signer: Signer | None = None) -> list[Incoming]:
    """Seal what the device queued and pack it as the sender does: per stream, one signature per message."""
    with rig.device() as session, session.begin():
        seal_pending(session, rig.dev.device_id, rig.signer)
    with rig.device() as session:
        rows = session.execute(
            select(OutboxRecord.record_type, OutboxContent.payload)
            .join(OutboxContent, OutboxContent.seq == OutboxRecord.seq)
            .where(OutboxRecord.state == "pending")
            .order_by(OutboxRecord.seq)
        ).all()
    by_stream: dict[str, list[bytes]] = defaultdict(list)
    for stream, payload in rows:
        by_stream[stream].append(payload or b"")
    key = signer or rig.signer
    return [
        Incoming(up_topic(rig.dev.device_id, stream), encode_batch_message(key, payloads))
        for stream, payloads in by_stream.items()
    ]


def queue(rig: SyncRig, *records: tuple[str, dict[str, object]]) -> None:
    with rig.device() as session, session.begin():
        for record_type, body in records:
            enqueue(session, record_type, body, now=T0)


def count(rig: SyncRig, model: object) -> int:
    with rig.server() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_a_batch_is_stored_with_a_proof_that_verifies_each_record_and_the_acks_free_the_outbox(
    rig: SyncRig,
) -> None:
    pid = str(uuid.uuid4())
    queue(
        rig,
        ("protocol", protocol_body("P1")),
        ("payment", payment_body(pid, "P1")),
        ("protocol", protocol_body("P2")),
    )
    outcome = ingest(rig, outbox_messages(rig))
    assert outcome.accepted == 3 and outcome.dead_letters == 0
    with rig.server() as session:
        inbox = session.scalars(select(SyncInbox).order_by(SyncInbox.seq)).all()
        batches = {b.id: b for b in session.scalars(select(SyncBatch))}
    device_key = Verifier.from_b64(rig.dev.public_key_b64)
    for row in inbox:
        proof = batches[row.batch_id or ""]
        digests = [proof.manifest[i : i + 32] for i in range(0, len(proof.manifest), 32)]
        assert hashlib.sha256(row.payload).digest() in digests
        device_key.verify(DOMAIN_BATCH, proof.manifest, proof.sig)  # raises if the proof were wrong
        assert row.sig == proof.sig and row.kid == proof.kid
    with rig.device() as session, session.begin():
        freed = apply_acks(session, outcome.acks[rig.dev.device_id], T0)
    assert sorted(freed) == [1, 2, 3]
    assert outbox_messages(rig) == []  # nothing pending any more: nothing to send


def rewrap(msg: Incoming, payloads: list[bytes] | None = None, sig: bytes | None = None) -> Incoming:
    """The same v3 message with some of its parts replaced (what an attacker on the broker can do)."""
    batch = decode_up(msg.payload)
    assert isinstance(batch, SignedBatch)
    return Incoming(msg.topic, frame_batch(batch.kid, sig or batch.sig, payloads or batch.payloads))


def test_forged_tampered_and_misdirected_batches_are_dead_lettered_and_change_nothing(rig: SyncRig) -> None:
    queue(rig, ("protocol", protocol_body("P1")), ("protocol", protocol_body("P2")))
    (good,) = outbox_messages(rig)
    batch = decode_up(good.payload)
    assert isinstance(batch, SignedBatch)
    payloads = batch.payloads
    forger = Signer.generate()
    forged = rewrap(good, sig=forger.sign(DOMAIN_BATCH, batch_manifest(payloads)))  # right kid, wrong key
    tampered = rewrap(good, payloads=[payloads[0], payloads[1].replace(b"P2", b"P9")])  # one record changed
    unknown = outbox_messages(rig, forger)[0]  # a key the server never registered
    with rig.server() as session, session.begin():
        other = add_device(session, f"PD-other-{uuid.uuid4().hex[:6]}", T0)
    foreign = outbox_messages(rig, Signer.from_b64(other.private_key_b64))[0]  # other device's key, our topic
    outcome = ingest(rig, [forged, tampered, unknown, foreign])
    with rig.server() as session:
        reasons = sorted(session.scalars(select(SyncDeadLetter.reason)))
    assert reasons == ["bad_signature", "bad_signature", "unknown_key", "wrong_device"]
    assert outcome.accepted == 0 and not outcome.acks
    assert (count(rig, SyncInbox), count(rig, Protocol), count(rig, SyncBatch)) == (0, 0, 0)
    assert ingest(rig, [good]).accepted == 2  # the genuine message still goes in afterwards


def test_a_second_payment_for_a_paid_protocol_raises_a_conflict_and_keeps_the_first(rig: SyncRig) -> None:
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    queue(rig, ("protocol", protocol_body("P7")), ("payment", payment_body(first, "P7")))
    ingest(rig, outbox_messages(rig))
    with rig.device() as session, session.begin():
        session.query(OutboxRecord).update({"state": "acked"})
    queue(rig, ("payment", payment_body(second, "P7")), ("payment", payment_body(third, "P7")))
    outcome = ingest(rig, outbox_messages(rig))
    statuses = sorted((a.seq, a.status, a.reason) for a in outcome.acks[rig.dev.device_id])
    assert statuses == [(3, "conflict", "double_payment"), (4, "conflict", "double_payment")]
    with rig.server() as session:
        assert list(session.scalars(select(Payment.id))) == [first]
        conflicts = session.scalars(select(SyncConflict).order_by(SyncConflict.seq)).all()
        assert [(c.kind, c.seq) for c in conflicts] == [("double_payment", 3), ("double_payment", 4)]
        assert first in (conflicts[0].detail or "") and second in (conflicts[0].detail or "")
        assert count(rig, SyncInbox) == 4  # the signed records themselves are kept
    # the same payment again (a later record of it, reversed) is not a conflict: its status changes
    reversed_body = {**payment_body(first, "P7"), "status": "reversed"}
    queue(rig, ("payment", reversed_body))
    with rig.device() as session, session.begin():
        session.query(OutboxRecord).filter(OutboxRecord.seq < 5).update({"state": "acked"})
    outcome = ingest(rig, outbox_messages(rig))
    assert [a.status for a in outcome.acks[rig.dev.device_id]] == ["ok"]
    with rig.server() as session:
        assert session.scalar(select(Payment.status)) == "reversed"


def test_bookmark_v2_carries_its_end_and_v1_is_still_read_as_an_instant(rig: SyncRig) -> None:
    v2 = Bookmark(bookmark_id=str(uuid.uuid4()), started_at=T0, ended_at=T0 + timedelta(minutes=5), label="stop",
                  protocol_number="P1").to_body()  # fmt: skip
    queue(rig, ("bookmark", v2))
    v1_body = BookmarkRecordV1(bookmark_id=str(uuid.uuid4()), started_at=T0, label="old").to_body()
    v1 = make_payload(dev=rig.dev.device_id, epoch="old-app", seq=1, record_id=str(uuid.uuid4()), stream="bookmark",
                      sv=1, ts=T0, prev="", refs={}, body=v1_body)  # fmt: skip
    backwards = {**v2, "bookmark_id": str(uuid.uuid4()), "ended_at": (T0 - timedelta(seconds=1)).isoformat()}
    bad = make_payload(dev=rig.dev.device_id, epoch="old-app", seq=2, record_id=str(uuid.uuid4()), stream="bookmark",
                       sv=2, ts=T0, prev="", refs={}, body=backwards)  # fmt: skip
    topic = up_topic(rig.dev.device_id, "bookmark")
    outcome = ingest(
        rig, [*outbox_messages(rig), Incoming(topic, encode_batch_message(rig.signer, [v1, bad]))]
    )
    assert outcome.accepted == 2
    old = sorted((a.seq, a.status) for a in outcome.acks[rig.dev.device_id] if a.epoch == "old-app")
    assert old == [(1, "ok"), (2, "rejected")]
    with rig.server() as session:
        rows = {b.label: b for b in session.scalars(select(ServerBookmark))}
    assert rows["stop"].ended_at == T0 + timedelta(minutes=5)
    assert rows["old"].ended_at is None


def test_an_ack_frees_only_the_row_whose_hash_it_names(rig: SyncRig) -> None:
    queue(rig, ("protocol", protocol_body("A1")), ("protocol", protocol_body("A2")))
    outbox_messages(rig)
    with rig.device() as session:
        rows = session.execute(select(OutboxRecord.seq, OutboxRecord.epoch, OutboxRecord.sha256)).all()
    (s1, epoch, h1), (s2, _, _h2) = rows
    wrong = AckItem(epoch=epoch, seq=s2, sha256=h1 or "", status="ok")  # another row's hash
    stale = AckItem(epoch="other-epoch", seq=s1, sha256=h1 or "", status="ok")
    right = AckItem(epoch=epoch, seq=s1, sha256=h1 or "", status="ok")
    with rig.device() as session, session.begin():
        assert apply_acks(session, [wrong, stale], T0) == []
        assert apply_acks(session, [right], T0) == [s1]
        assert apply_acks(session, [right], T0) == []  # already freed
    with rig.device() as session:
        assert dict(session.execute(select(OutboxRecord.seq, OutboxRecord.state)).tuples().all()) == {
            s1: "acked", s2: "pending"}  # fmt: skip


def test_device_status_keeps_the_latest(rig: SyncRig) -> None:
    from core.sync.records import DeviceStatus as Status

    for pending in (3, 1):
        body = Status(outbox_pending=pending, app_version="0.1.0", measured_at=T0, battery_pct=50).to_body()
        queue(rig, ("device_status", body))
    ingest(rig, outbox_messages(rig))
    with rig.server() as session:
        latest = session.scalars(select(DeviceStatus)).one()
    assert latest.seq == 2 and '"outbox_pending": 1' in latest.body


def test_the_high_water_mark_waits_for_a_gap_and_then_jumps_over_everything_stored_after_it(
    rig: SyncRig,
) -> None:
    queue(rig, *[("segment", segment_body(i)) for i in range(1, 1301)])
    with rig.device() as session, session.begin():
        seal_pending(session, rig.dev.device_id, rig.signer)
    with rig.device() as session:
        payloads = list(session.scalars(select(OutboxContent.payload).order_by(OutboxContent.seq)))

    def send(seqs: range) -> None:
        ingest(rig, [Incoming(up_topic(rig.dev.device_id, "segment"),
                              encode_batch_message(rig.signer, [payloads[s - 1] or b"" for s in seqs[i : i + 100]]))
                     for i in range(0, len(seqs), 100)])  # fmt: skip

    def marks() -> tuple[int, int, bool]:
        with rig.server() as session:
            s = session.scalars(select(SyncStream)).one()
            return s.hwm, s.max_seq, s.gap_since is not None

    send(range(1, 101))
    assert marks() == (100, 100, False)
    send(range(201, 1301))  # 101..200 still on the way: the mark stays, the gap is noted
    assert marks() == (100, 1300, True)
    send(range(101, 201))  # the gap closes: the mark moves over 1 100 stored seqs (several chunks)
    assert marks() == (1300, 1300, False)


def test_a_record_with_a_nul_character_is_refused_alone_and_the_rest_of_its_batch_is_stored(
    rig: SyncRig,
) -> None:
    """PostgreSQL text cannot hold NUL: such a record must not make the whole batch fail again and again."""
    poisoned = {**protocol_body("P-NUL"), "driver_name": "ИВАНОВ\x00ИВАН"}
    queue(rig, ("protocol", protocol_body("P-OK")), ("protocol", poisoned))
    outcome = ingest(rig, outbox_messages(rig))
    statuses = sorted((a.status, a.reason) for a in outcome.acks[rig.dev.device_id])
    assert statuses == [("ok", None), ("rejected", "invalid_body")]
    with rig.server() as session:
        assert list(session.scalars(select(Protocol.number))) == ["P-OK"]
        (detail,) = session.scalars(select(SyncDeadLetter.detail))
    assert "NUL" in detail and count(rig, SyncInbox) == 1


def test_acks_checked_against_the_hashes_the_sender_holds_free_exactly_their_rows(rig: SyncRig) -> None:
    """The sender passes the (epoch, sha256) it read when it sent each row; an ack must match those."""
    queue(
        rig,
        ("protocol", protocol_body("K1")),
        ("protocol", protocol_body("K2")),
        ("protocol", protocol_body("K3")),
    )
    outbox_messages(rig)
    with rig.device() as session:
        rows = session.execute(select(OutboxRecord.seq, OutboxRecord.epoch, OutboxRecord.sha256)).all()
    (s1, epoch, h1), (s2, _, h2), (s3, _, h3) = [(s, e, h or "") for s, e, h in rows]
    known = {s1: RowHash(epoch, h1), s2: RowHash(epoch, h2)}  # s3 is not in flight: its row is read
    acks = [
        AckItem(epoch=epoch, seq=s1, sha256=h1, status="ok"),
        AckItem(epoch=epoch, seq=s2, sha256=h1, status="ok"),  # names another row's hash: forged or stale
        AckItem(epoch=epoch, seq=s3, sha256=h3, status="dup"),
    ]
    with rig.device() as session, session.begin():
        assert apply_acks(session, acks, T0, known) == [s1, s3]
        assert apply_acks(session, acks[:1], T0, known) == []  # already acked: not freed twice
    with rig.device() as session:
        marks = session.execute(select(OutboxRecord.seq, OutboxRecord.state, OutboxRecord.acked_at,
                                       OutboxRecord.ack_status)).tuples().all()  # fmt: skip
    assert {seq: rest for seq, *rest in marks} == {
        s1: ["acked", T0, "ok"],
        s2: ["pending", None, None],
        s3: ["acked", T0, "dup"],
    }


def test_a_record_id_sent_again_under_another_seq_is_a_conflict_and_writes_no_second_row(
    rig: SyncRig,
) -> None:
    """What a device restored from a backup does (a new epoch, the same records): the inbox holds each record
    id once, so business tables need no unique index of their own on it (s0010)."""
    queue(rig, ("segment", segment_body(7)))
    (first,) = outbox_messages(rig)
    assert ingest(rig, [first]).accepted == 1
    original = parse_payload(decode_up(first.payload).payloads[0])  # type: ignore[union-attr]
    again = make_payload(dev=original.dev, epoch="restored-epoch", seq=1, record_id=original.id,
                         stream="segment", sv=original.sv, ts=T0, prev="", refs={}, body=original.body)  # fmt: skip
    outcome = ingest(rig, [Incoming(first.topic, encode_batch_message(rig.signer, [again]))])
    assert outcome.accepted == 0 and outcome.conflicts == 1
    [ack] = outcome.acks[rig.dev.device_id]
    assert (ack.epoch, ack.status, ack.reason) == (
        "restored-epoch",
        "conflict",
        "record id already used by another record",
    )
    assert count(rig, ServerSegment) == 1 and count(rig, SyncInbox) == 1 and count(rig, SyncConflict) == 1


def test_a_business_key_seen_again_in_another_record_keeps_the_first_row_and_fails_nothing(
    rig: SyncRig,
) -> None:
    """Two records (distinct record ids) describing one segment, in one batch and again in a later one: the
    first row stays, every record is stored in the inbox and acked, and no batch fails (PostgreSQL takes new
    business rows by COPY after checking their keys; SQLite by INSERT OR IGNORE)."""
    body = segment_body(3)
    queue(rig, ("segment", body), ("segment", {**body, "file_name": "copy-in-same-batch.mp4"}))
    outcome = ingest(rig, outbox_messages(rig))
    assert outcome.accepted == 2 and outcome.dead_letters == 0
    queue(rig, ("segment", {**body, "file_name": "copy-in-later-batch.mp4"}))
    later = ingest(rig, outbox_messages(rig)[-1:])
    assert later.accepted == 1 and later.dead_letters == 0 and later.conflicts == 0
    with rig.server() as session:
        names = session.scalars(select(ServerSegment.file_name)).all()
    assert names == [body["file_name"]]
    assert count(rig, SyncInbox) == 3


def race(rig: SyncRig, first: Callable[[Session], A], second: Callable[[Session], B]) -> tuple[A, B]:
    """``first`` in a transaction left open; ``second`` in another thread's transaction, which must wait for
    the first's uncommitted rows; then the first commits, and the second must finish without an error."""
    a = rig.server()
    a.begin()
    got_first = first(a)
    got_second: list[B] = []

    def worker() -> None:
        with rig.server() as b, b.begin():
            got_second.append(second(b))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the second writer must wait for the first's uncommitted rows"
    a.commit()
    a.close()
    thread.join(20)
    assert not thread.is_alive() and len(got_second) == 1, "the second writer failed"
    return got_first, got_second[0]


def test_two_writers_racing_on_one_business_key_never_store_it_twice(rig: SyncRig) -> None:
    """Worker A has inserted a segment and not committed; worker B brings another record of the same segment.
    PostgreSQL: B's COPY waits for A, then the primary key refuses it; B rolls back to its savepoint, finds
    A's row and leaves it. SQLite: B waits for A's lock, then ignores the row. Either way one row, A's."""
    from server.ingest.bulk_write import insert_ignore as _insert_ignore

    table = cast(Table, ServerSegment.__table__)
    base = {"recording_id": "rec-1", "device_id": rig.dev.device_id, "seq": 0, "started_at": T0, "ended_at": T0,
            "size_bytes": 1, "sha256": "0" * 64, "codec": "h264", "prev_sha256": None, "start_lat": None,
            "start_lon": None, "end_lat": None, "end_lon": None, "gps_fix_seconds": None, "gps_seconds": None}  # fmt: skip
    first = {**base, "segment_id": "seg-race", "record_id": "rec-a", "file_name": "a.mp4"}
    second = {**base, "segment_id": "seg-race", "record_id": "rec-b", "file_name": "b.mp4"}
    race(
        rig,
        lambda a: _insert_ignore(a, table, [first]),
        lambda b: _insert_ignore(b, table, [second]),  # no IntegrityError: B leaves A's row alone
    )
    with rig.server() as session:
        assert session.scalars(select(ServerSegment.file_name)).all() == ["a.mp4"]


def test_two_workers_racing_on_one_message_store_it_once_and_ack_the_second_as_duplicates(
    rig: SyncRig,
) -> None:
    """A message delivered to two workers at once (a resend while the first copy is in flight): A has stored it
    and not committed; B's insert waits for A, then finds A's rows and acks every record as a duplicate,
    with the same hash. Nothing is stored twice and no batch fails."""
    queue(rig, ("segment", segment_body(1)), ("segment", segment_body(2)), ("segment", segment_body(3)))
    (message,) = outbox_messages(rig)
    registry = DeviceRegistry(rig.server)
    first, second = race(
        rig,
        lambda a: ingest_batch(a, [message], registry, T0),
        lambda b: ingest_batch(b, [message], registry, T0),
    )
    acks_a = first.acks[rig.dev.device_id]
    acks_b = second.acks[rig.dev.device_id]
    assert [x.status for x in acks_a] == ["ok"] * 3 and [x.status for x in acks_b] == ["dup"] * 3
    assert [(x.seq, x.sha256) for x in acks_b] == [(x.seq, x.sha256) for x in acks_a]
    assert count(rig, SyncInbox) == 3 and count(rig, ServerSegment) == 3


def test_two_workers_creating_a_new_streams_row_at_once_both_succeed(rig: SyncRig) -> None:
    """A new device's first two batches reach two workers at once: both find no ``sync_stream`` row and create
    it. The second's insert waits for the first, then leaves its row alone and raises its marks; no batch
    fails on the stream's key and every record is stored and acked."""
    queue(rig, *(("segment", segment_body(i)) for i in range(1, 5)))
    outbox_messages(rig)  # sealed
    with rig.device() as session:
        payloads = session.scalars(
            select(OutboxContent.payload)
            .join(OutboxRecord, OutboxContent.seq == OutboxRecord.seq)
            .order_by(OutboxRecord.seq)
        ).all()
    topic = up_topic(rig.dev.device_id, "segment")
    early = Incoming(topic, encode_batch_message(rig.signer, [p or b"" for p in payloads[:2]]))
    late = Incoming(topic, encode_batch_message(rig.signer, [p or b"" for p in payloads[2:]]))
    registry = DeviceRegistry(rig.server)
    first, second = race(
        rig,
        lambda a: ingest_batch(a, [early], registry, T0),
        lambda b: ingest_batch(b, [late], registry, T0),
    )
    assert [x.status for x in first.acks[rig.dev.device_id]] == ["ok"] * 2
    assert [x.status for x in second.acks[rig.dev.device_id]] == ["ok"] * 2
    assert count(rig, SyncInbox) == 4 and count(rig, SyncStream) == 1
    with rig.server() as session:
        stream = session.scalars(select(SyncStream)).one()
    assert (stream.hwm, stream.max_seq) == (4, 4)


def test_a_hello_and_a_batch_creating_a_new_streams_row_at_once_both_succeed(rig: SyncRig) -> None:
    """A new device's hello raises the stream's marks in one worker while its first batch is stored in
    another: neither fails on the stream's key, and the marks end at the highest of both."""
    from server.ingest.stream_marks import raise_marks

    queue(rig, ("segment", segment_body(1)), ("segment", segment_body(2)))
    (message,) = outbox_messages(rig)
    with rig.device() as session:
        epoch = session.scalars(select(OutboxRecord.epoch)).first() or ""
    registry = DeviceRegistry(rig.server)
    outcome, _ = race(
        rig,
        lambda a: ingest_batch(a, [message], registry, T0),
        lambda b: raise_marks(b, rig.dev.device_id, epoch, T0, 5),
    )
    assert [x.status for x in outcome.acks[rig.dev.device_id]] == ["ok"] * 2
    with rig.server() as session:
        stream = session.scalars(select(SyncStream)).one()
    assert (stream.hwm, stream.max_seq) == (2, 5)


def test_streams_marks_are_raised_once_in_key_order_after_hellos_and_batches_in_any_order(rig: SyncRig) -> None:
    """Two workers whose batches touch the same streams lock their ``sync_stream`` rows in one order (in
    arrival order each could hold the row the other waits for: a deadlock that fails a batch). A hello's marks
    wait for the end of the batch too: the statements that touch ``sync_stream`` come in key order."""
    queue(rig, ("segment", segment_body(1)), ("segment", segment_body(2)))
    (message,) = outbox_messages(rig)
    with rig.device() as session:
        epoch = session.scalars(select(OutboxRecord.epoch)).first() or ""
    dev = rig.dev.device_id
    hellos = [
        Incoming(req_topic(dev), seal(rig.signer, DOMAIN_REQUEST, Hello(dev=dev, epoch=e, max_seq=n, ts="t")))
        for e, n in (("zz-later-epoch", 4), ("00-earlier-epoch", 9), (epoch, 1))
    ]
    keys: list[str] = []

    def watch(state: ORMExecuteState) -> None:
        params = state.parameters
        for one in params if isinstance(params, list) else [params]:  # one statement, or executemany's rows
            if "sync_stream" in str(state.statement) and isinstance(one, dict) and "ep" in one:
                keys.append(str(one["ep"]))

    with rig.server() as session, session.begin():
        event.listen(session, "do_orm_execute", watch)
        out = ingest_batch(session, [hellos[0], message, hellos[1], hellos[2]], DeviceRegistry(rig.server), T0)
    assert [x.status for x in out.acks[dev]] == ["ok"] * 2
    order = list(dict.fromkeys(keys))
    assert order == sorted({"zz-later-epoch", "00-earlier-epoch", epoch}), keys
    with rig.server() as session:
        marks = {s.epoch: (s.hwm, s.max_seq) for s in session.scalars(select(SyncStream))}
    assert marks == {"zz-later-epoch": (0, 4), "00-earlier-epoch": (0, 9), epoch: (2, 2)}


def test_a_fleet_saying_hello_at_once_raises_every_stream_in_a_few_statements_and_keeps_open_gaps(
    rig: SyncRig,
) -> None:
    """After a broker restart every device says hello at once: the batch's streams are read, created and
    moved together, not with three statements each; a stream with an open gap keeps it, and its start."""
    with rig.server() as session, session.begin():
        devices = [add_device(session, f"PD-hello-{n:03d}", T0) for n in range(40)]
        session.add(SyncStream(device_id=devices[0].device_id, epoch="e1", hwm=2, max_seq=5, gap_since=T0,
                               resend_requests=0, updated_at=T0))  # fmt: skip
    hellos = [
        Incoming(req_topic(d.device_id), seal(Signer.from_b64(d.private_key_b64), DOMAIN_REQUEST,
                                              Hello(dev=d.device_id, epoch="e1", max_seq=3, ts="t")))
        for d in devices
    ]  # fmt: skip
    statements: list[str] = []

    def watch(state: ORMExecuteState) -> None:
        if "sync_stream" in str(state.statement):
            statements.append(str(state.statement).split()[0])

    later = T0 + timedelta(minutes=5)
    for _round in range(2):  # new streams, then streams that exist
        statements.clear()
        with rig.server() as session, session.begin():
            event.listen(session, "do_orm_execute", watch)
            ingest_batch(session, hellos, DeviceRegistry(rig.server), later)
        assert len(statements) <= 4, statements
    with rig.server() as session:
        marks = {s.device_id: (s.hwm, s.max_seq, s.gap_since) for s in session.scalars(select(SyncStream))}
    assert marks[devices[0].device_id] == (2, 5, T0), "the open gap and when it opened are kept"
    assert {marks[d.device_id] for d in devices[1:]} == {(0, 3, later)}, "seqs 1-3 not stored: a gap from now"
