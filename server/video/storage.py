"""Where uploaded segments live: the ``VideoStore`` interface and its filesystem backend.

A store holds, per key, an optional *partial* object (an upload in progress, appended at an explicit
offset) and an optional *committed* object (immutable once committed). Keys are built by the server from
a validated device id and an integer sequence number, never from client text. The S3-compatible backend
(``server.video.s3_store``) keeps the same contract; ``open_store`` picks the backend the configuration names.
A store that cannot be reached raises ``StoreUnavailable`` (an ``OSError``): the upload routes answer 503
with Retry-After and nothing is changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from server.config import StorageSection

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/\d{10}\.mp4$")
_BLOB_KEY = re.compile(r"^cases/\d{1,12}/[0-9a-f]{64}$")  # files attached to a case: cases/<case id>/<sha256>


class StoreUnavailable(OSError):
    """The store did not answer, or failed: try again later; nothing was changed by the failed call."""


class ObjectLocked(PermissionError):
    """The object is under a retention lock (Object Lock, compliance mode) until ``until``: not deleted."""

    def __init__(self, key: str, until: datetime | None) -> None:
        super().__init__(f"{key} is locked until {until.isoformat() if until else 'an unknown date'}")
        self.key = key
        self.until = until


class OffsetMismatch(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"upload is at offset {current}")
        self.current = current


WRITEBACK_BYTES = 1 << 20  # start writing staged bytes to disk every MiB, so the final fsync has little left
STAGING_SUFFIX = ".incoming"


def _start_writeback(fd: int, start: int, length: int) -> None:
    """Ask the kernel to write ``length`` bytes at ``start`` to disk now, without waiting (Linux starts the
    writeback of dirty pages on ``POSIX_FADV_DONTNEED``); durability still comes from the fsync at commit."""
    if length > 0 and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)


class StagedObject:
    """A whole object received before it is verified: ``write`` takes its bytes in order, the store's
    ``commit_staged`` makes it the committed object, ``discard`` drops it. It is never a partial, so nothing
    unverified can be resumed. Each store has its own kind (a file, a multipart upload)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.size = 0
        self.done = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def write_all(self, pieces: Sequence[bytes | bytearray | memoryview]) -> None:
        """``write`` each of ``pieces``, in order."""
        for piece in pieces:
            self.write(piece)

    def persist(self) -> None:
        """Make the bytes written so far durable without making them the object (before the commit's checks
        and database transaction, so that neither waits for the disk). Nothing to do where the commit itself
        is what stores them."""

    def discard(self) -> None:
        raise NotImplementedError


class StagedFile(StagedObject):
    """A staged object in a file of its own. Bytes go to disk while they arrive (writeback started every
    ``WRITEBACK_BYTES``), so the fsync before the commit waits only for the tail, as with one large write."""

    def __init__(self, key: str, path: Path, on_close: Callable[[Path], None] | None = None) -> None:
        super().__init__(key)
        self.path = path
        self._synced_to = 0
        self._durable = False  # fsynced since the last write
        self._on_close = on_close
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def _fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"staging file {self.path.name} is closed")
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        fd = self._fileno()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        self.size += len(data)
        self._durable = False
        if self.size - self._synced_to >= WRITEBACK_BYTES:
            _start_writeback(fd, self._synced_to, self.size - self._synced_to)
            self._synced_to = self.size

    def persist(self) -> None:
        os.fsync(self._fileno())
        self._durable = True

    def sync_and_close(self) -> None:
        if not self._durable:
            os.fsync(self._fileno())
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self._on_close is not None:
                self._on_close(self.path)

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self._close()
            self.path.unlink(missing_ok=True)


class VideoStore(Protocol):
    def partial_size(self, key: str) -> int: ...
    def append(self, key: str, offset: int, data: bytes) -> int: ...
    def read_partial(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]: ...
    def discard_partial(self, key: str) -> None: ...
    def commit(self, key: str) -> None: ...
    def stage(self, key: str, size: int | None = None, sha256: str | None = None) -> StagedObject: ...
    def commit_staged(self, staged: StagedObject) -> None: ...
    def committed_size(self, key: str) -> int | None: ...
    def read_range(self, key: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]: ...
    def open_committed(self, key: str) -> BinaryIO: ...
    def free_bytes(self) -> int: ...
    def delete(self, key: str) -> bool: ...
    def sweep_staging(self, older_than: float) -> list[str]: ...
    def partial_keys(self, older_than: float) -> list[str]: ...
    def put_blob(self, area_key: Callable[[str], str], chunks: Iterable[bytes], limit: int) -> BlobStored: ...
    def read_blob(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]: ...
    def blob_size(self, key: str) -> int | None: ...


def open_store(storage: StorageSection) -> VideoStore:
    """The store the configuration names: ``storage.url`` ``s3://bucket[/prefix]`` for S3-compatible object
    storage, else the folder ``storage.video_dir`` (the embedded default)."""
    if storage.url.startswith("s3://"):
        from server.video.s3_store import S3Store

        return S3Store.from_config(storage)
    return FilesystemStore(storage.video_dir)


class BlobTooLarge(Exception):
    """More bytes came than the limit allows; nothing was kept."""


class BlobStored:
    def __init__(self, key: str, size: int, sha256: str) -> None:
        self.key, self.size, self.sha256 = key, size, sha256


def segment_key(device_id: str, seq: int) -> str:
    key = f"{device_id}/{seq:010d}.mp4"
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a valid segment key: {key!r}")
    return key


class FilesystemStore:
    """Partials in ``<root>/partial``, committed segments in ``<root>/segments``; every commit is fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "segments").mkdir(parents=True, exist_ok=True)
        self._open_staging: set[Path] = set()  # staging files of requests in progress in this process
        self._open_guard = threading.Lock()

    def _path(self, area: str, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a valid segment key: {key!r}")
        path = (self.root / area / key).resolve()
        if not path.is_relative_to(self.root / area):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def partial_size(self, key: str) -> int:
        path = self._path("partial", key)
        return path.stat().st_size if path.exists() else 0

    def append(self, key: str, offset: int, data: bytes) -> int:
        path = self._path("partial", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        current = path.stat().st_size if path.exists() else 0
        if offset != current:
            raise OffsetMismatch(current)
        with path.open("ab") as fh:
            fh.write(data)
            fh.flush()
            _start_writeback(fh.fileno(), current, len(data))
        return current + len(data)

    def read_partial(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of the partial object so far (nothing if there is none)."""
        path = self._path("partial", key)
        if not path.exists():
            return
        with path.open("rb") as fh:
            while data := fh.read(chunk):
                yield data

    def discard_partial(self, key: str) -> None:
        self._path("partial", key).unlink(missing_ok=True)

    def commit(self, key: str) -> None:
        source = self._path("partial", key)
        target = self._path("segments", key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(source, target)
        # The new name is durable once its folder is synced; a partial that reappears after a crash is
        # harmless (the database says which object is committed), so its folder needs no fsync.
        self._sync_dir(target.parent)

    def stage(self, key: str, size: int | None = None, sha256: str | None = None) -> StagedFile:
        """A fresh staging file next to the key's partial (a unique name: concurrent requests never share one).
        ``size`` and ``sha256`` (what the object should be) are not needed here."""
        partial = self._path("partial", key)
        partial.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=partial.name + ".", suffix=STAGING_SUFFIX, dir=partial.parent)
        os.close(fd)
        path = Path(name)
        with self._open_guard:
            self._open_staging.add(path)
        return StagedFile(key, path, self._staging_closed)

    def _staging_closed(self, path: Path) -> None:
        with self._open_guard:
            self._open_staging.discard(path)

    def commit_staged(self, staged: StagedObject) -> None:
        """Fsync the staged bytes and make them the committed object of its key (as ``commit``)."""
        if not isinstance(staged, StagedFile):
            raise TypeError(f"not staged by this store: {staged!r}")
        target = self._path("segments", staged.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.sync_and_close()
        os.replace(staged.path, target)
        staged.done = True
        self._sync_dir(target.parent)

    @staticmethod
    def _sync_dir(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def committed_size(self, key: str) -> int | None:
        path = self._path("segments", key)
        return path.stat().st_size if path.exists() else None

    def read_range(self, key: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``start``..``end`` inclusive of the committed object."""
        with self._path("segments", key).open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                data = fh.read(min(chunk, left))
                if not data:
                    return
                left -= len(data)
                yield data

    def open_committed(self, key: str) -> BinaryIO:
        """The committed object as a seekable binary file (for reads at random, e.g. box headers)."""
        return self._path("segments", key).open("rb")

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def delete(self, key: str) -> bool:
        """Remove the committed object of ``key`` (the retention run); True if there was one, False if it was
        already gone, so a repeated delete is harmless. The removal is durable once its folder is synced."""
        path = self._path("segments", key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._sync_dir(path.parent)
        return True

    def _partial_files(self, older_than: float) -> Iterator[Path]:
        """Files under ``partial/<device>/`` last modified before ``older_than`` (a ``time.time()`` value)."""
        for folder in sorted((self.root / "partial").iterdir()):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                try:
                    if path.is_file() and path.stat().st_mtime < older_than:
                        yield path
                except FileNotFoundError:  # committed or discarded meanwhile
                    continue

    def sweep_staging(self, older_than: float) -> list[str]:
        """Delete staging files (``*.incoming``) left behind by a crash: not open in this process and last
        written before ``older_than``. Nothing ever resumes from a staging file and no row names one, so
        the grace period only protects a request still writing (in another server process). Returns the
        deleted names, relative to the partial folder."""
        removed = []
        for path in self._partial_files(older_than):
            if not path.name.endswith(STAGING_SUFFIX):
                continue
            with self._open_guard:
                if path in self._open_staging:
                    continue
                path.unlink(missing_ok=True)
            removed.append(path.relative_to(self.root / "partial").as_posix())
        return removed

    def _blob_path(self, key: str) -> Path:
        if not _BLOB_KEY.fullmatch(key):
            raise ValueError(f"not a valid file key: {key!r}")
        path = (self.root / "blobs" / key).resolve()
        if not path.is_relative_to(self.root / "blobs"):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def put_blob(self, area_key: Callable[[str], str], chunks: Iterable[bytes], limit: int) -> BlobStored:
        """Keep a file (a case's attachment): written to a temporary file while hashed, at most ``limit``
        bytes (``BlobTooLarge`` past it, nothing kept), fsynced, then named ``area_key(sha256)``. The same
        bytes twice are one file."""
        folder = self.root / "blobs" / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, suffix=STAGING_SUFFIX)
        temp = Path(name)
        hasher = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for piece in chunks:
                    size += len(piece)
                    if size > limit:
                        raise BlobTooLarge(f"more than {limit} bytes")
                    hasher.update(piece)
                    fh.write(piece)
                fh.flush()
                os.fsync(fh.fileno())
            digest = hasher.hexdigest()
            key = area_key(digest)
            target = self._blob_path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            self._sync_dir(target.parent)
            return BlobStored(key, size, digest)
        finally:
            temp.unlink(missing_ok=True)

    def read_blob(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self._blob_path(key).open("rb") as fh:
            while data := fh.read(chunk):
                yield data

    def blob_size(self, key: str) -> int | None:
        path = self._blob_path(key)
        return path.stat().st_size if path.exists() else None

    def partial_keys(self, older_than: float) -> list[str]:
        """Keys of the partial objects last written before ``older_than`` (not staging files)."""
        keys = []
        for path in self._partial_files(older_than):
            key = path.relative_to(self.root / "partial").as_posix()
            if _KEY.fullmatch(key):
                keys.append(key)
        return keys
