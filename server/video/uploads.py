"""The segment upload protocol on the server: announce (signed manifest entry), append at an offset, verify.

1. ``announce``: the device sends the signed manifest entry of segment ``seq``. It must be the device's
   own, carry a valid signature by the device's registered key, fit the size limit and link to whatever
   neighbours the server already holds (chain continuity on arrival). Answer: the current offset.
2. ``append``: bytes at an explicit offset (a wrong offset answers the current one; nothing is written).
   When the last byte arrives the whole object is hashed: a match commits it durably and answers
   ``stored``; a mismatch discards the partial so the device sends it again.
Errors carry an HTTP status and whether a retry can help: 400 never storable, 403 not this device,
404 not announced, 409 offset conflict, 413 too large, 460 hash mismatch (retry), 503 busy, 507 full.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.manifest import (
    ManifestEntry,
    ManifestError,
    check_link,
    entry_from_json,
    entry_hash,
    entry_to_json,
    verify_entry,
)
from core.structured_log import log_event
from server.db.base import transaction
from server.db.video import VideoSegment
from server.video.storage import OffsetMismatch, VideoStore, segment_key

log = logging.getLogger(__name__)
HASH_MISMATCH = 460


class UploadError(Exception):
    def __init__(self, status: int, reason: str, retry: bool = False, offset: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry = retry
        self.offset = offset


@dataclass(frozen=True)
class UploadState:
    seq: int
    state: str  # uploading | stored
    offset: int
    size: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "state": self.state,
            "offset": self.offset,
            "size": self.size,
            "sha256": self.sha256,
        }


KeyLookup = Callable[[str], Ed25519PublicKey | None]


class SegmentUploads:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: VideoStore,
        public_key: KeyLookup,
        clock_now: Callable[[], datetime],
        max_segment_bytes: int = 512 * 1024 * 1024,
        max_concurrent: int = 8,
        min_free_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.public_key = public_key
        self.now = clock_now
        self.max_segment_bytes = max_segment_bytes
        self.min_free_bytes = min_free_bytes
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, device_id: str, seq: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((device_id, seq), threading.Lock())

    @staticmethod
    def _row(session: Session, device_id: str, seq: int) -> VideoSegment | None:
        return session.scalar(
            select(VideoSegment).where(VideoSegment.device_id == device_id, VideoSegment.seq == seq)
        )

    def _state(self, row: VideoSegment) -> UploadState:
        offset = row.size if row.state == "stored" else self.store.partial_size(row.storage_key)
        return UploadState(row.seq, row.state, offset, row.size, row.sha256)

    def status(self, device_id: str, seq: int) -> UploadState | None:
        with self.sessions() as session:
            row = self._row(session, device_id, seq)
            return self._state(row) if row else None

    def announce(self, device_id: str, seq: int, body: bytes) -> UploadState:
        try:
            entry = entry_from_json(body)
        except ManifestError as exc:
            raise UploadError(400, f"manifest entry: {exc}") from exc
        if entry.device_id != device_id:
            raise UploadError(403, "manifest entry belongs to another device")
        if entry.seq != seq:
            raise UploadError(400, f"manifest entry is for segment {entry.seq}, not {seq}")
        if entry.size > self.max_segment_bytes:
            raise UploadError(
                413, f"segment of {entry.size} bytes exceeds the limit of {self.max_segment_bytes}"
            )
        key = self.public_key(device_id)
        if key is None:
            raise UploadError(403, "unknown or inactive device")
        try:
            verify_entry(entry, key)
        except ManifestError as exc:
            raise UploadError(400, f"manifest entry: {exc}") from exc
        with self._lock(device_id, seq), transaction(self.sessions) as session:
            row = self._row(session, device_id, seq)
            if row is not None:
                if row.entry_hash != entry_hash(entry) or row.sha256 != entry.sha256:
                    raise UploadError(
                        400, f"segment {seq} was already announced with a different manifest entry"
                    )
                return self._state(row)
            linked = self._check_neighbours(session, entry)
            if self.store.free_bytes() - entry.size < self.min_free_bytes:
                raise UploadError(507, "video store is out of space", retry=False)
            row = VideoSegment(
                device_id=device_id,
                seq=seq,
                start_utc=entry.start,
                end_utc=entry.end,
                frames=entry.frames,
                size=entry.size,
                sha256=entry.sha256,
                prev_hash=entry.prev_hash,
                entry_hash=entry_hash(entry),
                entry_json=entry_to_json(entry),
                kid=entry.kid,
                repaired=entry.repaired,
                state="uploading",
                linked_prev=linked,
                storage_key=segment_key(device_id, seq),
                created_at=self.now(),
            )
            session.add(row)
            session.flush()
            log_event(log, "video.segment_announced", device_id=device_id, seq=seq, size=entry.size)
            return self._state(row)

    def _check_neighbours(self, session: Session, entry: ManifestEntry) -> bool:
        """Raise 400 if the entry contradicts a neighbour already held; True if its predecessor is linked."""
        try:
            if entry.seq == 1:
                check_link(None, entry)
                linked = True
            else:
                prev_row = self._row(session, entry.device_id, entry.seq - 1)
                linked = prev_row is not None
                if prev_row is not None:
                    check_link(entry_from_json(prev_row.entry_json), entry)
            next_row = self._row(session, entry.device_id, entry.seq + 1)
            if next_row is not None:
                check_link(entry, entry_from_json(next_row.entry_json))
                next_row.linked_prev = True
        except ManifestError as exc:
            raise UploadError(400, f"broken chain: {exc}") from exc
        return linked

    def append(self, device_id: str, seq: int, offset: int, data: bytes) -> UploadState:
        if offset < 0:
            raise UploadError(400, "Upload-Offset must not be negative")
        if not self._slots.acquire(blocking=False):
            raise UploadError(503, "too many uploads in progress", retry=True)
        try:
            with self._lock(device_id, seq):
                return self._append(device_id, seq, offset, data)
        finally:
            self._slots.release()

    def _append(self, device_id: str, seq: int, offset: int, data: bytes) -> UploadState:
        with self.sessions() as session:
            row = self._row(session, device_id, seq)
            if row is None:
                raise UploadError(404, f"segment {seq} was not announced")
            key, size, sha, state = row.storage_key, row.size, row.sha256, row.state
        if state == "stored":
            return UploadState(seq, "stored", size, size, sha)
        if offset + len(data) > size:
            raise UploadError(413, f"bytes {offset}..{offset + len(data)} run past the segment size {size}")
        if self.store.free_bytes() < len(data) + self.min_free_bytes // 2:
            raise UploadError(507, "video store is out of space")
        try:
            new_size = self.store.append(key, offset, data)
        except OffsetMismatch as exc:
            raise UploadError(
                409, f"upload is at offset {exc.current}, not {offset}", offset=exc.current
            ) from exc
        if new_size < size:
            return UploadState(seq, "uploading", new_size, size, sha)
        actual = self.store.partial_sha256(key)
        if actual != sha:
            self.store.discard_partial(key)
            log_event(log, "video.hash_mismatch", device_id=device_id, seq=seq, expected=sha, actual=actual)
            raise UploadError(
                HASH_MISMATCH,
                "SHA-256 of the uploaded bytes does not match the manifest",
                retry=True,
                offset=0,
            )
        self.store.commit(key)
        with transaction(self.sessions) as session:
            stored = self._row(session, device_id, seq)
            assert stored is not None
            stored.state = "stored"
            stored.stored_at = self.now()
        log_event(log, "video.segment_stored", device_id=device_id, seq=seq, size=size, sha256=sha)
        return UploadState(seq, "stored", size, size, sha)
