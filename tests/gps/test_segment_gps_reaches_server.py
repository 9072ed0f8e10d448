"""A closed segment's GPS travels from the recorder's index (device outbox, ``segment`` v2) through the signed
sync batch into the server's ``sync_segment_meta``; a v1 record from an older device still lands, with no GPS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.manifest import GENESIS_HASH, ManifestEntry, SegmentGps, entry_hash, format_utc, sign_entry
from core.signing import new_private_key
from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message, make_payload
from core.sync.records import SegmentRecordV1
from core.sync.signing import Signer
from edge.recorder.index import DatabaseIndex, segment_id
from edge.sync.outbox import OutboxContent, OutboxRecord, seal_pending
from server.commands.device import add_device
from server.db.sync import SegmentMeta
from server.ingest.pipeline import Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _chain(device_id: str, tracks: list[SegmentGps | None]) -> list[ManifestEntry]:
    key = new_private_key()
    out: list[ManifestEntry] = []
    prev = GENESIS_HASH
    for n, gps in enumerate(tracks, start=1):
        start = T0 + timedelta(seconds=60 * (n - 1))
        entry = sign_entry(
            ManifestEntry(device_id, n, format_utc(start), format_utc(start + timedelta(seconds=60)), 1800,
                          1000 + n, f"{n:064x}", prev, "k", repaired=gps is None, gps=gps),
            key,
        )  # fmt: skip
        out.append(entry)
        prev = entry_hash(entry)
    return out


def test_segment_positions_reach_the_server_table_and_v1_lands_without_them(
    device_sessions: sessionmaker[Session], server_sessions: sessionmaker[Session]
) -> None:
    device_id = f"PD-{uuid.uuid4().hex[:10]}"
    with server_sessions() as session, session.begin():
        dev = add_device(session, device_id, T0)
    signer = Signer.from_b64(dev.private_key_b64)
    index = DatabaseIndex(device_sessions, device_id)
    tracks = [
        SegmentGps(43.2389012, 76.8897, 43.2412, -0.0000123, 57, 60),  # moving, three seconds without a fix
        SegmentGps(None, None, None, None, 0, 60),  # GPS had no fix the whole minute
        None,  # repaired at start: not known
    ]
    for entry in _chain(device_id, tracks):
        index.segment_closed(entry, Path(f"{entry.seq:010d}.mp4"))
    with device_sessions() as session, session.begin():
        seal_pending(session, device_id, signer)
    with device_sessions() as session:
        rows = session.execute(select(OutboxRecord.sv, OutboxContent.payload).join(OutboxContent, OutboxContent.seq == OutboxRecord.seq).order_by(OutboxRecord.seq)).all()
    assert [sv for sv, _ in rows] == [2, 2, 2], "the device emits segment v2"
    old_body = SegmentRecordV1(
        segment_id=str(uuid.uuid4()), recording_id="rec-old", seq=99, started_at=T0, ended_at=T0,
        file_name="old.mp4", size_bytes=1, sha256="ef" * 32,
    ).to_body()  # fmt: skip
    old = make_payload(dev=device_id, epoch="old-app", seq=1, record_id=str(uuid.uuid4()), stream="segment",
                       sv=1, ts=T0, prev="", refs={}, body=old_body)  # fmt: skip
    topic = up_topic(device_id, "segment")
    messages = [
        Incoming(topic, encode_batch_message(signer, [payload for _, payload in rows])),
        Incoming(topic, encode_batch_message(signer, [old])),
    ]
    with server_sessions() as session, session.begin():
        outcome = ingest_batch(session, messages, DeviceRegistry(server_sessions), T0)
    assert outcome.accepted == 4 and outcome.dead_letters == 0
    with server_sessions() as session:
        stored = {m.seq: m for m in session.scalars(select(SegmentMeta))}
    moving = stored[1]
    assert moving.segment_id == segment_id(device_id, 1)
    assert (moving.start_lat, moving.start_lon) == (43.2389012, 76.8897)
    assert (moving.end_lat, moving.end_lon) == (43.2412, -0.0000123)
    assert (moving.gps_fix_seconds, moving.gps_seconds) == (57, 60)

    def gps(m: SegmentMeta) -> tuple[object, ...]:
        return (m.start_lat, m.start_lon, m.end_lat, m.end_lon, m.gps_fix_seconds, m.gps_seconds)

    assert gps(stored[2]) == (None, None, None, None, 0, 60)
    assert gps(stored[3]) == gps(stored[99]) == (None,) * 6
