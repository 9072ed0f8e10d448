"""Uploads closed segments while the device is on its charger: bookmarked segments first, then oldest first.

Per segment: announce the signed manifest entry, ask the server for its offset, send the rest in chunks,
and delete the local file only when the server answers ``stored`` with exactly the local SHA-256.
Each chunk is signed with the running SHA-256 of the file up to its start and its end (resuming at offset
N first hashes the first N local bytes). After the last chunk that prefix is the whole segment, whose
SHA-256 is the manifest's, so a segment that fits in one chunk is not hashed again here: the server's own
hash of what it stored must equal it. Bytes changed on the device after closing are thus refused (460)
and the segment is never confirmed.
Unplugging (``should_continue`` turns false) pauses between chunks; the next run resumes at the server's
offset. A hash mismatch (460) restarts the segment; a request the server can never store (400, 403, 413)
marks the segment ``rejected`` and keeps the file. A busy server (503) asking to wait at most
``busy_wait_max_s`` (all its upload slots taken at a dock rush) is waited out inside the run, up to
``busy_retries`` times per segment; a longer wait (its store unreachable), full (507) and network errors end
the run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.structured_log import log_event
from edge.db.base import transaction
from edge.db.recording import RecordingSegment
from edge.recorder.bookmarks import bookmarked_seqs
from edge.upload.client import ServerState, UploadClient, UploadRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    confirmed: int
    rejected: int
    stopped_because: str  # done | undocked | busy | server_full | network | retry_limit
    retry_after: float | None = None  # busy: the seconds the server asked to wait


@dataclass(frozen=True)
class UploadProgress:
    pending_segments: int
    pending_bytes: int
    sent_bytes: int  # of pending segments, already on the server
    confirmed_segments: int
    confirmed_bytes: int
    rejected_segments: int

    @property
    def fraction(self) -> float:
        total = self.pending_bytes + self.confirmed_bytes
        return 1.0 if total == 0 else (self.confirmed_bytes + self.sent_bytes) / total


def _prefix_hash(fh: BinaryIO, length: int, block: int = 1 << 20) -> hashlib._Hash:
    """SHA-256 of the first ``length`` bytes of ``fh`` (the prefix the server already holds)."""
    hasher = hashlib.sha256()
    fh.seek(0)
    left = length
    while left > 0:
        data = fh.read(min(block, left))
        if not data:
            raise UploadRejected(400, "local file is shorter than the server's offset", retry=False)
        hasher.update(data)
        left -= len(data)
    return hasher


@dataclass(frozen=True)
class PendingSegment:
    """What the uploader needs of one pending segment (read for the whole run in one query)."""

    seq: int
    entry_json: str
    file_name: str
    size: int
    sha256: str
    uploaded_bytes: int


def pending_segments(session: Session) -> list[PendingSegment]:
    """Pending segments in upload order: those overlapping a bookmark first, then the rest; each group
    oldest first."""
    rows = session.execute(
        select(
            RecordingSegment.seq,
            RecordingSegment.entry_json,
            RecordingSegment.file_name,
            RecordingSegment.size,
            RecordingSegment.sha256,
            RecordingSegment.uploaded_bytes,
        )
        .where(RecordingSegment.upload_state == "pending")
        .order_by(RecordingSegment.seq)
    )
    pending = [PendingSegment(*row) for row in rows]
    marked = bookmarked_seqs(session)
    return [p for p in pending if p.seq in marked] + [p for p in pending if p.seq not in marked]


def _read_whole(path: Path, size: int) -> bytes | None:
    """The first ``size`` bytes of ``path`` (fewer if it is shorter), or None if it cannot be read now (the
    upload then opens the file itself and reports what is wrong)."""
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError:
        return None


def upload_progress(session: Session) -> UploadProgress:
    def agg(state: str, column: object) -> int:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(column), 0)).where(RecordingSegment.upload_state == state)
            )
            or 0
        )

    def count(state: str) -> int:
        return int(session.scalar(select(func.count()).where(RecordingSegment.upload_state == state)) or 0)

    return UploadProgress(
        pending_segments=count("pending"),
        pending_bytes=agg("pending", RecordingSegment.size),
        sent_bytes=agg("pending", RecordingSegment.uploaded_bytes),
        confirmed_segments=count("confirmed"),
        confirmed_bytes=agg("confirmed", RecordingSegment.size),
        rejected_segments=count("rejected"),
    )


class Uploader:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        directory: Path,
        client: UploadClient,
        clock: Clock | None = None,
        chunk_bytes: int = 16 * 1024 * 1024,  # the server accepts up to 16 MiB per PUT
        max_hash_retries: int = 3,
        busy_wait_max_s: float = 10.0,
        busy_retries: int = 5,
    ) -> None:
        self.sessions = sessions
        self.directory = directory
        self.client = client
        self.clock = clock or SystemClock()
        self.chunk_bytes = chunk_bytes
        self.max_hash_retries = max_hash_retries
        self.busy_wait_max_s = busy_wait_max_s
        self.busy_retries = busy_retries
        self.busy_waits = 0  # busy answers waited out inside a run, since this uploader was made
        self._confirmer: ThreadPoolExecutor | None = None
        self._confirming: list[Future[None]] = []

    def run_once(self, should_continue: Callable[[], bool] = lambda: True) -> RunResult:
        """Upload every pending segment while ``should_continue()`` (docked and linked) holds."""
        with self.sessions() as session:
            order = pending_segments(session)
        # Recording a confirmation and deleting the local copy (three fsyncs) overlap the next segment's
        # data: one worker, in order; all done before this returns. A crash in between leaves the row
        # pending with its file, and the next run gets ``stored`` from the server and confirms it then.
        # Another worker reads the next segment from flash while the current one is on the wire.
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-confirm") as confirmer,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-read") as reader,
        ):
            self._confirmer = confirmer
            self._confirming = []
            try:
                result = self._run(order, should_continue, reader)
            finally:
                self._confirmer = None
            for future in self._confirming:
                future.result()
        return result

    def _read_ahead(self, reader: ThreadPoolExecutor, segment: PendingSegment) -> Future[bytes | None] | None:
        """Start reading a segment that will go in one request from its start (fresh, at most one chunk)."""
        if segment.uploaded_bytes != 0 or not 0 < segment.size <= self.chunk_bytes:
            return None
        return reader.submit(_read_whole, self.directory / segment.file_name, segment.size)

    def _run(
        self, order: list[PendingSegment], should_continue: Callable[[], bool], reader: ThreadPoolExecutor
    ) -> RunResult:
        confirmed = rejected = 0
        ahead = self._read_ahead(reader, order[0]) if order else None
        for n, segment in enumerate(order):
            seq = segment.seq
            current, ahead = ahead, None
            if not should_continue():
                return RunResult(confirmed, rejected, "undocked")
            if n + 1 < len(order):
                ahead = self._read_ahead(reader, order[n + 1])
            try:
                outcome = self._upload_when_free(segment, should_continue, current)
            except UploadRejected as exc:
                if exc.status == 503:
                    return RunResult(confirmed, rejected, "busy", exc.retry_after)
                if exc.status == 507:
                    log_event(log, "upload.server_full", seq=seq)
                    return RunResult(confirmed, rejected, "server_full")
                self._mark_rejected(seq, f"{exc.status}: {exc.reason}")
                rejected += 1
                continue
            except httpx.HTTPError as exc:
                log_event(log, "upload.network_error", seq=seq, error=str(exc))
                return RunResult(confirmed, rejected, "network")
            if outcome == "confirmed":
                confirmed += 1
            elif outcome == "retry_limit":
                return RunResult(confirmed, rejected, "retry_limit")
            else:
                return RunResult(confirmed, rejected, outcome)
        return RunResult(confirmed, rejected, "done")

    def _upload_when_free(
        self, segment: PendingSegment, should_continue: Callable[[], bool], data: Future[bytes | None] | None
    ) -> str:
        """``_upload``, waiting out a busy server's short Retry-After (a few times) instead of giving up."""
        waits = 0
        while True:
            try:
                return self._upload(segment, should_continue, data)
            except UploadRejected as exc:
                wait = exc.retry_after
                if exc.status != 503 or wait is None or wait > self.busy_wait_max_s or waits >= self.busy_retries:
                    raise
                waits += 1
                self.busy_waits += 1
                log_event(log, "upload.busy_wait", seq=segment.seq, wait_s=wait)
                if not self._pause(wait, should_continue):
                    raise
                data = None  # read again from the server's offset

    def _pause(self, seconds: float, should_continue: Callable[[], bool]) -> bool:
        """Sleep ``seconds`` in short slices; False as soon as ``should_continue()`` turns false."""
        deadline = self.clock.monotonic() + seconds
        while (left := deadline - self.clock.monotonic()) > 0:
            if not should_continue():
                return False
            self.clock.sleep(min(left, 0.5))
        return should_continue()

    def _upload(
        self,
        segment: PendingSegment,
        should_continue: Callable[[], bool],
        read_ahead: Future[bytes | None] | None = None,
    ) -> str:
        seq, entry_json, size, sha = segment.seq, segment.entry_json, segment.size, segment.sha256
        path = self.directory / segment.file_name
        for attempt in range(self.max_hash_retries):
            announce_with: str | None = None
            first_chunk: bytes | None = None
            if attempt == 0 and segment.uploaded_bytes == 0:
                # Nothing sent yet: the first chunk carries the manifest entry and announces the segment.
                # If the server holds bytes after all, it answers 409 with its offset and we go on from there.
                state = ServerState("uploading", 0, size, sha)
                announce_with = entry_json
                first_chunk = None if read_ahead is None else read_ahead.result()
            else:
                state = self.client.announce(seq, entry_json)
            try:
                with path.open("rb") as fh:
                    state = self._send_from(
                        seq, fh, state, size, sha, should_continue, announce_with, first_chunk
                    )
            except UploadRejected as exc:
                if exc.status == 460:
                    log_event(log, "upload.hash_mismatch", seq=seq, reason=exc.reason)
                    self._record_sent(seq, 0)
                    continue
                raise
            if state.state == "undocked":
                return "undocked"
            if state.state == "stored" and state.sha256 == sha and state.size == size:
                if self._confirmer is None:
                    self._confirm(seq, path)
                else:
                    self._confirming.append(self._confirmer.submit(self._confirm, seq, path))
                return "confirmed"
            raise UploadRejected(400, "server confirmed a different hash", retry=False)
        return "retry_limit"

    def _send_from(
        self,
        seq: int,
        fh: BinaryIO,
        state: ServerState,
        size: int,
        sha: str,
        should_continue: Callable[[], bool],
        announce_with: str | None = None,
        first_chunk: bytes | None = None,
    ) -> ServerState:
        """Send the file from the server's offset to the end; ``state`` ``undocked`` if unplugged first.
        ``announce_with`` (the manifest entry) goes with the first request, which then announces too.
        ``first_chunk``: the file's first bytes, already read (sent instead of reading them at offset 0)."""
        offset = state.offset
        hasher = _prefix_hash(fh, offset)
        while state.state != "stored":
            if not should_continue():
                self._record_sent(seq, offset)
                return ServerState("undocked", offset, size, sha)
            fh.seek(offset)
            # Ask for exactly the bytes left when they fit one chunk: a larger read would allocate the whole
            # chunk size and shrink it afterwards (milliseconds per segment).
            left = size - offset
            if offset == 0 and first_chunk is not None:
                chunk, first_chunk = first_chunk, None
            else:
                chunk = fh.read(left if 0 < left < self.chunk_bytes else self.chunk_bytes)
            if not chunk:
                raise UploadRejected(400, "local file is shorter than its manifest entry", retry=False)
            before = hasher.hexdigest()
            after_hasher: hashlib._Hash | None = None
            if offset + len(chunk) >= size:
                # The prefix after the last chunk is the whole segment, whose SHA-256 the signed manifest
                # entry already holds: no need to hash the chunk here. If the local bytes changed since the
                # segment was closed, the server's running hash differs and it refuses the chunk (460).
                after = sha
            else:
                after_hasher = hasher.copy()
                after_hasher.update(chunk)
                after = after_hasher.hexdigest()
            try:
                try:
                    state = self.client.append(seq, offset, chunk, before, after, announce_with)
                finally:
                    announce_with = None
            except UploadRejected as exc:
                if exc.status == 409 and exc.offset is not None:
                    offset = exc.offset
                    hasher = _prefix_hash(fh, offset)
                    continue
                raise
            if state.state == "stored":
                break
            if after_hasher is not None and state.offset == offset + len(chunk):
                hasher = after_hasher
            else:
                hasher = _prefix_hash(fh, state.offset)
            offset = state.offset
            self._record_sent(seq, offset)
        return state

    def _record_sent(self, seq: int, offset: int) -> None:
        with transaction(self.sessions) as session:
            session.execute(
                update(RecordingSegment).where(RecordingSegment.seq == seq).values(uploaded_bytes=offset)
            )

    def _confirm(self, seq: int, path: Path) -> None:
        """Record the server's confirmation, then delete the local copy, then record the deletion."""
        with transaction(self.sessions) as session:
            session.execute(
                update(RecordingSegment)
                .where(RecordingSegment.seq == seq)
                .values(
                    upload_state="confirmed",
                    uploaded_bytes=RecordingSegment.size,
                    confirmed_at=self.clock.now(),
                )
            )
        path.unlink(missing_ok=True)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        with transaction(self.sessions) as session:
            session.execute(
                update(RecordingSegment)
                .where(RecordingSegment.seq == seq)
                .values(deleted_at=self.clock.now())
            )
        log_event(log, "upload.segment_confirmed", seq=seq)

    def _mark_rejected(self, seq: int, reason: str) -> None:
        with transaction(self.sessions) as session:
            row = session.get(RecordingSegment, seq)
            if row is not None:
                row.upload_state = "rejected"
                row.upload_error = reason
        log_event(log, "upload.segment_rejected", seq=seq, reason=reason)
