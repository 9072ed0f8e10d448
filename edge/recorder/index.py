"""The recorder's database index: closed segments and gaps go into the device database and the sync outbox
in one transaction each; at start the index is reconciled from the journals (idempotent by seq and gap id)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.manifest import ManifestEntry, entry_to_json, parse_utc
from edge.db.base import transaction
from edge.db.recording import RecordingGapRow, RecordingSegment
from edge.recorder.journal import Journal, RecordingGap
from edge.recorder.storage_policy import StorageStatus
from edge.sync.outbox import enqueue


def recording_id(device_id: str) -> str:
    """The device's one continuous recording (numbered by ``seq`` for its whole life)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"patrolkit:recording:{device_id}"))


def segment_id(device_id: str, seq: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"patrolkit:segment:{device_id}:{seq}"))


def segment_record(entry: ManifestEntry, file_name: str) -> dict[str, object]:
    """The synced ``segment`` record body (``core.sync.records.SegmentRecordV2``): the manifest entry's facts,
    GPS included (all GPS fields null when the entry has no track, e.g. a segment repaired at start)."""
    gps = entry.gps
    return {
        "segment_id": segment_id(entry.device_id, entry.seq),
        "recording_id": recording_id(entry.device_id),
        "seq": entry.seq,
        "started_at": entry.start_utc,
        "ended_at": entry.end_utc,
        "file_name": file_name,
        "size_bytes": entry.size,
        "sha256": entry.sha256,
        "codec": "h264",
        "prev_sha256": entry.prev_hash,
        "start_lat": gps.start_lat if gps else None,
        "start_lon": gps.start_lon if gps else None,
        "end_lat": gps.end_lat if gps else None,
        "end_lon": gps.end_lon if gps else None,
        "gps_fix_seconds": gps.fix_seconds if gps else None,
        "gps_seconds": gps.seconds if gps else None,
    }


class DatabaseIndex:
    """Writes closed segments and gaps to the device database and the outbox, stamped by ``clock``."""

    def __init__(self, sessions: sessionmaker[Session], device_id: str, clock: Clock | None = None) -> None:
        self._sessions = sessions
        self.device_id = device_id
        self._clock = clock or SystemClock()

    def segment_closed(self, entry: ManifestEntry, path: Path) -> None:
        with transaction(self._sessions) as session:
            self._add_segment(session, entry, path.name)

    def _add_segment(self, session: Session, entry: ManifestEntry, file_name: str) -> None:
        if session.get(RecordingSegment, entry.seq) is not None:
            return
        session.add(
            RecordingSegment(
                seq=entry.seq,
                device_id=entry.device_id,
                started_at=entry.start,
                ended_at=entry.end,
                frames=entry.frames,
                size=entry.size,
                sha256=entry.sha256,
                repaired=entry.repaired,
                entry_json=entry_to_json(entry),
                file_name=file_name,
                upload_state="pending",
                uploaded_bytes=0,
            )
        )
        enqueue(session, "segment", segment_record(entry, file_name), now=self._clock.now())

    def gap_recorded(self, gap: RecordingGap) -> None:
        with transaction(self._sessions) as session:
            self._add_gap(session, gap)

    def _add_gap(self, session: Session, gap: RecordingGap) -> None:
        if session.get(RecordingGapRow, gap.gap_id) is not None:
            return
        session.add(
            RecordingGapRow(
                gap_id=gap.gap_id,
                started_at=parse_utc(gap.start_utc),
                ended_at=parse_utc(gap.end_utc),
                cause=gap.cause,
                seq_before=gap.seq_before,
                seq_after=gap.seq_after,
            )
        )
        enqueue(
            session,
            "recording_gap",
            {
                "gap_id": gap.gap_id,
                "recording_id": recording_id(self.device_id),
                "started_at": gap.start_utc,
                "ended_at": gap.end_utc,
                "reason": gap.cause,
            },
            now=self._clock.now(),
        )

    def storage_warning(self, status: StorageStatus) -> None:
        """Shown through the recorder status file; nothing to store."""

    def reconcile(self, journal: Journal, segment_files: dict[int, str]) -> None:
        """Insert every journaled entry and gap the database does not hold yet (after a crash between the two)."""
        with transaction(self._sessions) as session:
            for entry in journal.entries_from(min(segment_files, default=journal.next_seq())):
                if entry.seq in segment_files:
                    self._add_segment(session, entry, segment_files[entry.seq])
            for gap in journal.gaps():
                self._add_gap(session, gap)
