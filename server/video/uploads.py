"""The segment upload protocol on the server: announce (signed manifest entry), append at an offset, verify.

1. ``announce``: the device sends the signed manifest entry of segment ``seq``. It must be the device's
   own, carry a valid signature by the device's registered key, fit the size limit and link to whatever
   neighbours the server already holds (chain continuity on arrival). Answer: the current offset.
2. ``append``: bytes at an explicit offset (a wrong offset answers the current one; nothing is written),
   signed with the SHA-256 of the segment prefix before and after them (``core.upload_auth.verify_append``).
   The server keeps a running SHA-256 of each partial (rebuilt from the stored bytes after a restart, and
   checked against the device's signed ``before`` hash), feeds each body through it once, and writes the
   body only if the result equals the signed ``after`` hash (else 460: damaged in transit, send again).
   When the last byte arrives, that running hash is the hash of exactly the stored bytes: equal to the
   manifest's, the object is fsynced and committed and the answer is ``stored``; otherwise the partial is
   discarded so the device sends it again.
3. Both at once (``announce_for_append`` then ``append``): a first chunk that carries the manifest entry
   and the whole segment writes the segment's row only when the object is committed, already ``stored``
   (one database transaction per segment); a chunk that does not complete the segment inserts the row as
   ``uploading``, as ``announce`` would have. The row never says ``stored`` before its object is durable.
   Such a whole fresh segment costs the store nothing before its body arrives: ``append`` looks once, under
   the segment's lock, whether bytes of it are held after all (an upload cut off before its row was
   written); then the row is written as ``announce`` would have and the device is told their offset.
Errors carry an HTTP status and whether a retry can help: 400 never storable, 403 not this device,
404 not announced, 409 offset conflict, 413 too large, 460 hash mismatch (retry), 503 busy, 507 full.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, update
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
from core.upload_auth import AppendClaim
from server.db.base import transaction
from server.db.video import VideoSegment
from server.video.segment_lock import SegmentLocks
from server.video.storage import OffsetMismatch, StagedObject, VideoStore, segment_key

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
EMPTY_SHA256 = hashlib.sha256().hexdigest()


@dataclass
class RunningHash:
    """SHA-256 of the first ``offset`` bytes of a partial object, ready to take the next bytes."""

    offset: int
    hasher: hashlib._Hash
    digest: str


@dataclass
class PreparedAppend:
    """What ``begin_append`` found (the segment's fixed facts) and the running hash to feed the body into."""

    key: str
    size: int
    sha256: str
    hasher: hashlib._Hash
    entry: ManifestEntry | None = None  # announce deferred: the row is written when the data is stored


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
        locks: SegmentLocks | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.public_key = public_key
        self.now = clock_now
        self.max_segment_bytes = max_segment_bytes
        self.min_free_bytes = min_free_bytes
        self._slots = threading.BoundedSemaphore(max_concurrent)
        # one request at a time per segment, across every server host sharing the database
        self.locks = locks or SegmentLocks(sessions.kw["bind"])
        # running hashes of partials, least recently used first; each segment's entry is read and replaced
        # only under that segment's lock, the guard covers the dict itself for an instant (never disk I/O)
        self._running: OrderedDict[str, RunningHash] = OrderedDict()
        self._running_guard = threading.Lock()
        # Threads that hash request bodies while they arrive (``server.video.body_hash``).
        self.hash_workers = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="video-hash")
        self.max_running_hashes = 4096  # least recently used ones are rebuilt from the stored bytes

    def sweep_orphans(self, grace_seconds: float = 3600.0) -> list[str]:
        """Delete what a crash can leave behind in the upload staging area, if last written more than
        ``grace_seconds`` ago (so that no request still writing loses its file): staging files (no row ever
        refers to one, nothing resumes from one) and partial objects of segments whose row says ``stored``
        (the row refers to the committed object; such a partial can reappear after a crash, see
        ``FilesystemStore.commit``). A partial without a row is kept: the device resumes from it.
        Returns the storage names deleted."""
        older_than = self.now().timestamp() - grace_seconds
        removed = self.store.sweep_staging(older_than)
        keys = self.store.partial_keys(older_than)
        stored: set[str] = set()
        for start in range(0, len(keys), 500):
            with self.sessions() as session:
                stored.update(
                    session.scalars(
                        select(VideoSegment.storage_key).where(
                            VideoSegment.storage_key.in_(keys[start : start + 500]),
                            VideoSegment.state == "stored",
                        )
                    )
                )
        for key in sorted(stored):
            device_id, name = key.split("/")
            with self._lock(device_id, int(name.split(".")[0])):
                self._discard(key)
            removed.append(key)
        if removed:
            log_event(log, "video.staging_swept", removed=len(removed), grace_seconds=grace_seconds)
        return removed

    def _lock(self, device_id: str, seq: int) -> contextlib.AbstractContextManager[None]:
        """Hold the segment's lock: one request at a time per segment, in this process and on every other
        host that shares the database (``server.video.segment_lock``)."""
        return self.locks.hold(device_id, seq)

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

    def announce(
        self, device_id: str, seq: int, body: bytes, device_key: Ed25519PublicKey | None = None
    ) -> UploadState:
        """Register segment ``seq`` from its signed manifest entry (``device_key``: already looked up)."""
        entry = self._checked_entry(device_id, seq, body, device_key)
        with self._lock(device_id, seq):
            with transaction(self.sessions) as session:
                row = self._insert_row(session, entry)
                state = self._state(row)
            if state.state == "uploading" and state.offset >= state.size:
                key = segment_key(device_id, seq)
                return self._finish_whole_partial(device_id, seq, key, state.size, state.sha256)
            return state

    def _finish_whole_partial(self, device_id: str, seq: int, key: str, size: int, sha: str) -> UploadState:
        """A partial holding every byte whose commit did not happen (the store failed at that moment): if its
        bytes hash to the manifest's, commit it now; otherwise drop it and start again from 0. The device
        is never told an offset at the end of an uncommitted segment. The caller holds the segment's lock."""
        running = self._running_hash(key)
        if running.offset != size or running.digest != sha:
            self._discard(key)
            log_event(log, "video.whole_partial_dropped", device_id=device_id, seq=seq, offset=running.offset)
            return UploadState(seq, "uploading", 0, size, sha)
        self._forget_hash(key)
        self._commit_announced(device_id, seq, key)
        log_event(log, "video.segment_stored", device_id=device_id, seq=seq, size=size, sha256=sha)
        return UploadState(seq, "stored", size, size, sha)

    def _commit_announced(self, device_id: str, seq: int, key: str) -> None:
        """Commit the verified partial of an announced segment, then mark its row stored."""
        self.store.commit(key)
        with transaction(self.sessions) as session:
            session.execute(
                update(VideoSegment)
                .where(VideoSegment.device_id == device_id, VideoSegment.seq == seq)
                .values(state="stored", stored_at=self.now())
            )

    def announce_for_append(
        self, device_id: str, seq: int, body: bytes, device_key: Ed25519PublicKey, offset: int, length: int
    ) -> tuple[UploadState, ManifestEntry | None]:
        """Announce carried by a data request of ``length`` bytes at ``offset``. If that chunk is the whole
        of a segment not yet held, nothing is written now: the entry comes back for ``begin_append`` and
        ``append`` writes the row together with the stored object. Otherwise as ``announce``."""
        entry = self._checked_entry(device_id, seq, body, device_key)
        if offset != 0 or length != entry.size:
            with self._lock(device_id, seq), transaction(self.sessions) as session:
                return self._state(self._insert_row(session, entry)), None
        # No database read here: a row already there is found when the row is written (same entry: it is
        # marked stored; stored already: ``append`` says so first), and bytes already held make
        # ``begin_append`` refuse the deferral, so the segment is announced as usual and resumed.
        if self.store.free_bytes() - entry.size < self.min_free_bytes:
            raise UploadError(507, "video store is out of space", retry=False)
        return UploadState(seq, "uploading", 0, entry.size, entry.sha256), entry

    @staticmethod
    def _same_entry(row: VideoSegment, entry: ManifestEntry) -> None:
        if row.entry_hash != entry_hash(entry) or row.sha256 != entry.sha256:
            raise UploadError(400, f"segment {row.seq} was already announced with a different manifest entry")

    def _checked_entry(
        self, device_id: str, seq: int, body: bytes, device_key: Ed25519PublicKey | None
    ) -> ManifestEntry:
        """The manifest entry in ``body`` if it is this device's, for ``seq``, in size and correctly signed."""
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
        key = device_key or self.public_key(device_id)
        if key is None:
            raise UploadError(403, "unknown or inactive device")
        try:
            verify_entry(entry, key)
        except ManifestError as exc:
            raise UploadError(400, f"manifest entry: {exc}") from exc
        return entry

    def _insert_row(
        self, session: Session, entry: ManifestEntry, commit: Callable[[], None] | None = None
    ) -> VideoSegment:
        """The segment's row, ``uploading`` (inserted unless already there with this very entry; the caller
        holds the segment's lock). With ``commit`` the row says ``stored``, and ``commit`` (which commits the
        object in the store) runs first, before the row's transaction commits."""
        device_id, seq = entry.device_id, entry.seq
        near = {
            r.seq: r
            for r in session.scalars(
                select(VideoSegment).where(
                    VideoSegment.device_id == device_id, VideoSegment.seq.in_((seq - 1, seq, seq + 1))
                )
            )
        }
        row = near.get(seq)
        if row is not None:
            self._same_entry(row, entry)
            if row.state == "deleted":  # a tombstone of the retention run: never stored again
                raise UploadError(410, f"segment {seq} was deleted by retention on {row.deleted_at}", retry=False)
            if commit is not None and row.state != "stored":
                commit()
                row.state, row.stored_at = "stored", self.now()
            return row
        linked = self._check_neighbours(entry, near.get(seq - 1), near.get(seq + 1))
        if commit is None and self.store.free_bytes() - entry.size < self.min_free_bytes:
            raise UploadError(507, "video store is out of space", retry=False)
        if commit is not None:
            commit()
        now = self.now()
        row = VideoSegment(
            device_id=device_id,
            seq=seq,
            started_at=entry.start,
            ended_at=entry.end,
            frames=entry.frames,
            size=entry.size,
            sha256=entry.sha256,
            prev_hash=entry.prev_hash,
            entry_hash=entry_hash(entry),
            entry_json=entry_to_json(entry),
            kid=entry.kid,
            repaired=entry.repaired,
            state="uploading" if commit is None else "stored",
            linked_prev=linked,
            storage_key=segment_key(device_id, seq),
            created_at=now,
            stored_at=None if commit is None else now,
        )
        session.add(row)
        session.flush()
        log_event(log, "video.segment_announced", device_id=device_id, seq=seq, size=entry.size)
        return row

    def _check_neighbours(
        self, entry: ManifestEntry, prev_row: VideoSegment | None, next_row: VideoSegment | None
    ) -> bool:
        """Raise 400 if the entry contradicts a neighbour already held; True if its predecessor is linked."""
        try:
            if entry.seq == 1:
                check_link(None, entry)
                linked = True
            else:
                linked = prev_row is not None
                if prev_row is not None:
                    check_link(entry_from_json(prev_row.entry_json), entry)
            if next_row is not None:
                check_link(entry, entry_from_json(next_row.entry_json))
                next_row.linked_prev = True
        except ManifestError as exc:
            raise UploadError(400, f"broken chain: {exc}") from exc
        return linked

    def _running_hash(self, key: str) -> RunningHash:
        """The running hash of a partial: kept from the last append, or rebuilt by reading the stored bytes."""
        size = self.store.partial_size(key)
        if size == 0:  # nothing held: the empty prefix (nothing to read, nothing to keep)
            self._forget_hash(key)
            return RunningHash(0, hashlib.sha256(), EMPTY_SHA256)
        with self._running_guard:
            running = self._running.get(key)
            if running is not None and running.offset == size:
                self._running.move_to_end(key)
                return running
        hasher = hashlib.sha256()
        offset = 0
        for chunk in self.store.read_partial(key):
            hasher.update(chunk)
            offset += len(chunk)
        running = RunningHash(offset, hasher, hasher.hexdigest())
        self._remember(key, running)
        return running

    def _remember(self, key: str, running: RunningHash) -> None:
        with self._running_guard:
            self._running[key] = running
            self._running.move_to_end(key)
            while len(self._running) > self.max_running_hashes:
                self._running.popitem(last=False)

    def _forget_hash(self, key: str) -> None:
        with self._running_guard:
            self._running.pop(key, None)

    def _discard(self, key: str) -> None:
        self._forget_hash(key)
        self.store.discard_partial(key)

    def begin_append(
        self,
        device_id: str,
        seq: int,
        claim: AppendClaim,
        announced: UploadState | None = None,
        entry: ManifestEntry | None = None,
    ) -> PreparedAppend | None:
        """A copy of the running hash at ``claim.offset`` if it matches the claim, so that the caller can feed
        the body through it while it arrives and pass it to ``append``; None if ``append`` should decide.
        ``announced`` is what ``announce`` just answered for this segment (saves looking it up again);
        ``entry`` what ``announce_for_append`` deferred (``append`` then writes the row). A deferred whole
        segment starts from the empty prefix without asking the store: ``append`` checks, under the lock,
        that no bytes of it are held."""
        if entry is not None and announced is not None:
            if announced.state != "uploading" or claim.offset != 0 or claim.sha256_before != EMPTY_SHA256:
                return None
            return PreparedAppend(
                segment_key(device_id, seq), announced.size, announced.sha256, hashlib.sha256(), entry
            )
        with self._lock(device_id, seq):  # one segment at a time; other segments go on
            if announced is not None:
                if announced.state != "uploading":
                    return None
                key, size, sha = segment_key(device_id, seq), announced.size, announced.sha256
            else:
                with self.sessions() as session:
                    row = self._row(session, device_id, seq)
                    if row is None or row.state != "uploading":
                        return None
                    key, size, sha = row.storage_key, row.size, row.sha256
            running = self._running_hash(key)
            if running.offset != claim.offset or running.digest != claim.sha256_before:
                return None
            return PreparedAppend(key, size, sha, running.hasher.copy(), entry)

    def append(
        self,
        device_id: str,
        seq: int,
        claim: AppendClaim,
        data: bytes,
        prepared: PreparedAppend | None = None,
        staged: StagedObject | None = None,
    ) -> UploadState:
        """Store ``data`` at ``claim.offset`` if the prefix hashes the device signed match (see module doc).
        ``prepared`` is from ``begin_append``, its running hash already fed with ``data``. ``staged``: the
        body was written to a staging file instead (only a deferred announce's whole segment, ``data`` empty);
        it is committed if it verifies, and the caller discards it otherwise."""
        if claim.offset < 0:
            raise UploadError(400, "Upload-Offset must not be negative")
        if claim.device_id != device_id:
            raise UploadError(403, f"device {claim.device_id} may not write segments of {device_id}")
        if not self._slots.acquire(blocking=False):
            raise UploadError(503, "too many uploads in progress", retry=True)
        try:
            with self._lock(device_id, seq):  # one segment at a time; other segments go on
                return self._append(device_id, seq, claim, data, prepared, staged)
        finally:
            self._slots.release()

    def _append(
        self,
        device_id: str,
        seq: int,
        claim: AppendClaim,
        data: bytes,
        prepared: PreparedAppend | None,
        staged: StagedObject | None,
    ) -> UploadState:
        offset = claim.offset
        deferred = prepared.entry if prepared is not None else None
        if staged is not None and (deferred is None or offset != 0):
            raise ValueError("only the whole first chunk of a deferred announce may be staged")
        length = staged.size if staged is not None else len(data)
        if prepared is not None:
            # Key, size and hash never change once announced; the object is committed (under this lock)
            # together with the row's ``stored`` state, so the store tells whether that happened meanwhile.
            # A deferred announce needs no look: its row is read when it is written (stored already: kept).
            key, size, sha = prepared.key, prepared.size, prepared.sha256
            state = "uploading"
            if deferred is None and self.store.committed_size(key) is not None:
                # Stored meanwhile, or an object left by a crash before its row was written: the row says.
                with self.sessions() as session:
                    row = self._row(session, device_id, seq)
                    state = "stored" if row is not None and row.state == "stored" else "uploading"
        else:
            with self.sessions() as session:
                row = self._row(session, device_id, seq)
                if row is None:
                    raise UploadError(404, f"segment {seq} was not announced")
                key, size, sha, state = row.storage_key, row.size, row.sha256, row.state
        if state == "stored":
            return UploadState(seq, "stored", size, size, sha)
        if offset + length > size:
            raise UploadError(413, f"bytes {offset}..{offset + length} run past the segment size {size}")
        if staged is not None and length < size:
            raise UploadError(400, f"body of {length} bytes is shorter than the segment's {size}")
        if self.store.free_bytes() < length + self.min_free_bytes // 2:
            raise UploadError(507, "video store is out of space")
        running = self._running_hash(key)
        if deferred is not None and running.offset != 0:
            # Bytes of this segment are held after all (an upload cut off before its row was written): announce
            # it as usual, and the device goes on from them; the body just received is not used.
            with transaction(self.sessions) as session:
                self._insert_row(session, deferred)
            deferred = None
        if running.offset >= size and deferred is None:
            return self._finish_whole_partial(device_id, seq, key, size, sha)
        if offset != running.offset:
            raise UploadError(
                409, f"upload is at offset {running.offset}, not {offset}", offset=running.offset
            )
        if claim.sha256_before != running.digest:
            # The device's bytes before this offset differ from the stored ones: start the segment again.
            self._discard(key)
            log_event(log, "video.prefix_mismatch", device_id=device_id, seq=seq, offset=offset)
            raise UploadError(
                HASH_MISMATCH,
                f"SHA-256 of the stored bytes [0, {offset}) differs from the device's; send from 0",
                retry=True,
                offset=0,
            )
        if prepared is not None:
            hasher = prepared.hasher  # a copy of this very state (same offset and digest), fed with data
        else:
            hasher = running.hasher.copy()
            hasher.update(data)
        after = hasher.hexdigest()
        if after != claim.sha256_after:
            raise UploadError(
                HASH_MISMATCH,
                "the body does not match the signed SHA-256 (damaged in transit); send it again",
                retry=True,
                offset=offset,
            )
        if staged is not None:
            new_size = length  # already written, to its own file (committed below or discarded)
        else:
            try:
                new_size = self.store.append(key, offset, data)
            except OffsetMismatch as exc:
                self._forget_hash(key)
                raise UploadError(
                    409, f"upload is at offset {exc.current}, not {offset}", offset=exc.current
                ) from exc
            self._remember(key, RunningHash(new_size, hasher, after))
        if new_size < size:
            if deferred is not None:  # cannot happen (the chunk was the whole segment); announce as usual
                with transaction(self.sessions) as session:
                    self._insert_row(session, deferred)
            return UploadState(seq, "uploading", new_size, size, sha)
        if after != sha:
            self._discard(key)
            log_event(log, "video.hash_mismatch", device_id=device_id, seq=seq, expected=sha, actual=after)
            raise UploadError(
                HASH_MISMATCH,
                "SHA-256 of the uploaded bytes does not match the manifest",
                retry=True,
                offset=0,
            )
        self._forget_hash(key)
        if deferred is not None:
            # The segment's first and only chunk: its row is written once, already stored. Its bytes are made
            # durable first, so that the transaction does not wait for the disk (only the commit's rename).
            try:
                if staged is not None:
                    staged.persist()
                with transaction(self.sessions) as session:
                    if staged is not None:
                        self._insert_row(session, deferred, lambda: self.store.commit_staged(staged))
                    else:
                        self._insert_row(session, deferred, lambda: self.store.commit(key))
            except UploadError:
                self._discard(key)
                raise
        else:
            self._commit_announced(device_id, seq, key)
        log_event(log, "video.segment_stored", device_id=device_id, seq=seq, size=size, sha256=sha)
        return UploadState(seq, "stored", size, size, sha)
