"""The ``VideoStore`` on S3-compatible object storage (AWS S3, MinIO, SeaweedFS, ...) through boto3.

Layout under the bucket (and an optional prefix):

- ``segments/<device>/<seq>.mp4``: committed segments, written by multipart upload with a SHA-256 checksum
  on every part (the store checks each part as it arrives). Where the bucket has Object Lock enabled, each
  is written under a compliance-mode lock until ``lock_for`` after its commit; ``retain_until`` extends it.
- ``partial/<device>/<seq>.mp4/<offset>``: the verified bytes of an upload in progress, one object per
  append, named by the offset where it starts (each written whole with its SHA-256, or not at all). The
  partial is the unbroken chain of these objects from offset 0, so it can be read back (the running hash
  is rebuilt from it), resumed through any server host, and holds nothing that was not verified.
  ``commit`` makes one multipart upload of the chain: a piece of at least the minimum part size is copied
  inside the store as a part, smaller ones are joined into parts here.
- ``blobs/cases/<case>/<sha256>``: files attached to cases; with ``put_blob_until`` written under a
  compliance-mode lock too, which ``retain_blob_until`` extends.

Legal holds: ``legal_hold`` turns a committed segment's Object Lock legal hold ON or OFF (the retention run
and the case pages call it, ``server.review.object_locks``).

A staged object (a whole segment in one request) streams to the store while it arrives. When its size and
SHA-256 are known (the signed manifest entry's), it goes as one PUT whose body is fed as the bytes come and
whose checksum header is that SHA-256: the store keeps the object only if the bytes hash to it, so the object
exists only when it is exactly the segment the device signed. Otherwise it goes as a multipart upload (each
full part sent from a worker thread, the last one at ``commit_staged``). ``discard`` aborts either.
Any failure to reach the store raises ``StoreUnavailable``; nothing half-done is ever taken as committed
(an object appears only when its multipart upload completes).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.structured_log import log_event
from server.video.storage import (
    _BLOB_KEY,
    _KEY,
    BlobStored,
    BlobTooLarge,
    ObjectLocked,
    OffsetMismatch,
    StagedObject,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from server.config import StorageSection

log = logging.getLogger(__name__)
MIN_PART_BYTES = 5 * 1024 * 1024  # S3: every part but the last is at least this large
UNBOUNDED_FREE_BYTES = 1 << 62  # object storage has no free-space figure: the bucket grows
LockPolicy = Literal["auto", "off", "require"]
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
_OFFSET_NAME = re.compile(r"^\d{20}$")


def _sha256_b64(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(what: str, exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"object store: {what}: {exc}")


class _BodyPipe(io.RawIOBase):
    """The body of a PUT that is still arriving: ``feed`` from one thread, ``read`` by the HTTP client on
    another (blocking until bytes come, EOF after ``close``, an error after ``fail``)."""

    def __init__(self) -> None:
        self._pieces: deque[bytes] = deque()
        self._taken = 0  # bytes of the first piece already read
        self._closed_for_writes = False
        self._failed = False
        self._ready = threading.Condition()

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._ready:
            self._pieces.append(data)
            self._ready.notify()

    def end(self) -> None:
        with self._ready:
            self._closed_for_writes = True
            self._ready.notify_all()

    def fail(self) -> None:
        with self._ready:
            self._failed = True
            self._ready.notify_all()

    def read(self, size: int | None = -1) -> bytes:
        with self._ready:
            while not self._pieces and not self._closed_for_writes and not self._failed:
                self._ready.wait()
            if self._failed:
                raise OSError("the staged upload was dropped")
            if not self._pieces:
                return b""
            piece = self._pieces[0]
            if size is None or size < 0 or size >= len(piece) - self._taken:
                self._pieces.popleft()
                data = piece[self._taken :] if self._taken else piece
                self._taken = 0
                return data
            data = piece[self._taken : self._taken + size]
            self._taken += size
            return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class S3StreamedPut(StagedObject):
    """A whole segment of known size and SHA-256 sent as one PUT while it arrives (see the module doc)."""

    def __init__(self, store: S3Store, key: str, size: int, sha256_hex: str) -> None:
        super().__init__(key)
        self._store = store
        self._expected = size
        self._sha256_hex = sha256_hex
        self._pipe = _BodyPipe()
        self._put: Future[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.done:
            raise ValueError(f"staged upload of {self.key} is finished")
        self.size += len(data)
        if self.size > self._expected:  # more than the segment: never sent (the caller refuses it, 413)
            self._pipe.fail()
            return
        if self._put is None:
            self._put = self._store._part_workers.submit(
                self._store._put_streamed, self.key, self._pipe, self._expected, self._sha256_hex
            )
        self._pipe.feed(bytes(data))

    def finish(self) -> None:
        if self.size != self._expected or self._put is None:
            raise ValueError(f"staged {self.size} of the {self._expected} bytes of {self.key}")
        self._pipe.end()
        self._put.result()
        self.done = True

    def discard(self) -> None:
        if not self.done:
            self.done = True
            self._pipe.fail()


class S3StagedUpload(StagedObject):
    """A whole segment streaming into a multipart upload: full parts go out on the store's part threads
    while the rest arrives; the store completes it at ``commit_staged`` or aborts it at ``discard``."""

    def __init__(self, store: S3Store, key: str) -> None:
        super().__init__(key)
        self._store = store
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._guard = threading.Lock()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.done:
            raise ValueError(f"staged upload of {self.key} is finished")
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._store.part_bytes:
            part = bytes(self._buffer[: self._store.part_bytes])
            del self._buffer[: self._store.part_bytes]
            self._send(part)

    def _send(self, part: bytes) -> None:
        with self._guard:
            if self._upload_id is None:
                self._upload_id = self._store._create_multipart(self.key)
            number = len(self._parts) + 1
            self._parts.append(
                self._store._part_workers.submit(
                    self._store._upload_part, self.key, self._upload_id, number, part
                )
            )

    def finish(self) -> None:
        """Send what is left and complete the upload (or put the object at once if it is smaller than a
        part); the object exists only when this returns."""
        if self._upload_id is None:
            self._store._put_segment(self.key, bytes(self._buffer))
        else:
            if self._buffer or not self._parts:
                self._send(bytes(self._buffer))
            parts = [future.result() for future in self._parts]
            self._store._complete(self.key, self._upload_id, parts)
        self._buffer = bytearray()
        self.done = True

    def discard(self) -> None:
        """Drop the upload; the abort runs on a part thread (the caller may be the event loop)."""
        if self.done:
            return
        self.done = True
        self._buffer = bytearray()
        for future in self._parts:
            future.cancel()
        if self._upload_id is not None:
            self._store._part_workers.submit(self._abort_after_parts, self._upload_id, list(self._parts))

    def _abort_after_parts(self, upload_id: str, parts: list[Future[dict[str, Any]]]) -> None:
        for future in parts:  # a part still in flight would outlive the abort
            if not future.cancelled():
                future.exception()
        self._store._abort(self.key, upload_id)


def s3_client(
    endpoint: str | None,
    region: str,
    access_key: str | None,
    secret_key: str | None,
    timeout_s: float = 30.0,
    attempts: int = 3,
) -> Any:
    """The boto3 client the store uses: path-style addressing (any vendor), a few retries, short connect
    timeout. Bodies are not hashed again for the request signature: every write carries its SHA-256
    checksum, which the store verifies."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=min(timeout_s, 10.0),
            read_timeout=timeout_s,
            max_pool_connections=32,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class _RangeReader(io.RawIOBase):
    """A committed object as a seekable read-only file: each read is a ranged GET."""

    def __init__(self, store: S3Store, name: str, size: int) -> None:
        self._store = store
        self._name = name
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._size, self._pos + len(view)) - 1
        if end < self._pos:
            return 0
        data = self._store._get(self._name, f"bytes={self._pos}-{end}")
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class S3Store:
    """Segments, partials and case files in one bucket (see the module doc)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        part_bytes: int = MIN_PART_BYTES,
        object_lock: LockPolicy = "auto",
        lock_for: timedelta = timedelta(days=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        part_threads: int = 8,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"a part holds at least {MIN_PART_BYTES} bytes")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_bytes = part_bytes
        self.object_lock = object_lock
        self.lock_for = lock_for
        self.now = clock
        self._part_workers = ThreadPoolExecutor(max_workers=part_threads, thread_name_prefix="s3-part")
        self._bucket_facts: tuple[bool, bool] | None = None  # (object lock enabled, versioned)

    @classmethod
    def from_config(cls, storage: StorageSection) -> S3Store:
        bucket, _, prefix = storage.url.removeprefix("s3://").partition("/")
        s3 = storage.s3
        client = s3_client(s3.endpoint, s3.region, s3.access_key, s3.secret_key, s3.timeout_s)
        return cls(
            client,
            bucket,
            prefix,
            part_bytes=s3.part_mib * 1024 * 1024,
            object_lock=s3.object_lock,
            lock_for=timedelta(days=s3.lock_days),
        )

    # -- names -------------------------------------------------------------------------------------------

    def _segment(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a valid segment key: {key!r}")
        return f"{self.prefix}segments/{key}"

    def _partial_dir(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a valid segment key: {key!r}")
        return f"{self.prefix}partial/{key}/"

    def _blob(self, key: str) -> str:
        if not _BLOB_KEY.fullmatch(key):
            raise ValueError(f"not a valid file key: {key!r}")
        return f"{self.prefix}blobs/{key}"

    # -- bucket facts ------------------------------------------------------------------------------------

    def _facts(self) -> tuple[bool, bool]:
        """Whether the bucket has Object Lock enabled, and whether it keeps versions (asked once)."""
        if self._bucket_facts is not None:
            return self._bucket_facts
        try:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                lock = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
                if lock and conf["ObjectLockConfiguration"].get("Rule"):
                    log_event(
                        log,
                        "video.s3_default_retention",
                        bucket=self.bucket,
                        note="the bucket locks every new object: unfinished uploads are kept until it ends",
                    )
            except ClientError as exc:
                if _code(exc) not in {"ObjectLockConfigurationNotFoundError", "NotImplemented"}:
                    raise
                lock = False
            versioned = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") in {
                "Enabled",
                "Suspended",
            }
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"reading the settings of bucket {self.bucket}", exc) from exc
        self._bucket_facts = (lock, versioned)
        log_event(log, "video.s3_bucket", bucket=self.bucket, object_lock=lock, versioned=versioned)
        return self._bucket_facts

    def locks_evidence(self) -> bool:
        """Whether committed segments are written under a compliance-mode Object Lock."""
        if self.object_lock == "off" or self.lock_for <= timedelta(0):
            return False
        enabled = self._facts()[0]
        if not enabled and self.object_lock == "require":
            raise StoreUnavailable(
                f"bucket {self.bucket} has no Object Lock, and the configuration requires it"
            )
        return enabled

    def _lock_args(self) -> dict[str, Any]:
        if not self.locks_evidence():
            return {}
        return {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": self.now() + self.lock_for}

    # -- low-level calls ---------------------------------------------------------------------------------

    def _get(self, name: str, byte_range: str | None = None) -> bytes:
        try:
            args = {"Bucket": self.bucket, "Key": name} | ({"Range": byte_range} if byte_range else {})
            return bytes(self.client.get_object(**args)["Body"].read())
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _code(exc) in _NOT_FOUND:
                raise FileNotFoundError(name) from exc
            raise _unavailable(f"reading {name}", exc) from exc

    def _size(self, name: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise _unavailable(f"looking up {name}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"looking up {name}", exc) from exc

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                yield from page.get("Contents", [])
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"listing {prefix}", exc) from exc

    def _versions(self, prefix: str) -> list[dict[str, Any]]:
        """Every version and delete marker under ``prefix`` (``Key``, ``VersionId``), or every object of an
        unversioned bucket."""
        if not self._facts()[1]:
            return [{"Key": item["Key"]} for item in self._list(prefix)]
        found: list[dict[str, Any]] = []
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    found.append({"Key": item["Key"], "VersionId": item["VersionId"]})
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"listing versions of {prefix}", exc) from exc
        return found

    def _delete_version(self, item: dict[str, Any]) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, **item)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return
            until = self._lock_until(item) if _code(exc) in {"AccessDenied", "ObjectLocked"} else None
            if until is not None:
                raise ObjectLocked(item["Key"], until) from exc
            raise _unavailable(f"deleting {item['Key']}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"deleting {item['Key']}", exc) from exc

    def _lock_until(self, item: dict[str, Any]) -> datetime | None:
        try:
            found = self.client.get_object_retention(Bucket=self.bucket, **item)
        except (BotoCoreError, ClientError):
            return None
        until = found.get("Retention", {}).get("RetainUntilDate")
        return until if isinstance(until, datetime) else None

    def _purge(self, prefix: str) -> int:
        """Delete every object (every version) under ``prefix``, highest names first so that an interrupted
        purge of a partial leaves a shorter unbroken chain; returns how many objects were deleted."""
        items = sorted(self._versions(prefix), key=lambda item: item["Key"], reverse=True)
        for item in items:
            self._delete_version(item)
        return len(items)

    def _create_multipart(self, key: str) -> str:
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=self._segment(key),
                ChecksumAlgorithm="SHA256",
                ContentType="video/mp4",
                **self._lock_args(),
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"starting the upload of {key}", exc) from exc
        return str(created["UploadId"])

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        checksum = _sha256_b64(data)
        try:
            sent = self.client.upload_part(
                Bucket=self.bucket,
                Key=self._segment(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"sending part {number} of {key}", exc) from exc
        return {
            "PartNumber": number,
            "ETag": sent["ETag"],
            "ChecksumSHA256": sent.get("ChecksumSHA256", checksum),
        }

    def _copy_part(self, key: str, upload_id: str, number: int, source: str) -> dict[str, Any]:
        try:
            copied = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=self._segment(key),
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source},
            )["CopyPartResult"]
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"copying part {number} of {key}", exc) from exc
        part = {"PartNumber": number, "ETag": copied["ETag"]}
        if copied.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = copied["ChecksumSHA256"]
        return part

    def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._segment(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (BotoCoreError, ClientError) as exc:
            self._abort(key, upload_id)
            raise _unavailable(f"completing the upload of {key}", exc) from exc

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort an unfinished upload (best effort: ``sweep_staging`` aborts what is left)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._segment(key), UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            log_event(log, "video.s3_abort_failed", key=key, error=str(exc))

    def _put_segment(self, key: str, data: bytes) -> None:
        """A committed segment smaller than one part, in one request (with its SHA-256 and lock)."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._segment(key),
                Body=data,
                ContentType="video/mp4",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_sha256_b64(data),
                **self._lock_args(),
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"storing {key}", exc) from exc

    def _put_streamed(self, key: str, body: _BodyPipe, size: int, sha256_hex: str) -> None:
        """One PUT of ``size`` bytes read from ``body`` as they arrive, with the SHA-256 they must have."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._segment(key),
                Body=body,
                ContentLength=size,
                ContentType="video/mp4",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii"),
                **self._lock_args(),
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            raise _unavailable(f"storing {key}", exc) from exc

    # -- partials ----------------------------------------------------------------------------------------

    def _chain(self, key: str) -> list[tuple[str, int, int]]:
        """The partial's pieces (object name, start, size) that follow on from offset 0 without a gap."""
        folder = self._partial_dir(key)
        pieces: dict[int, tuple[str, int]] = {}
        for item in self._list(folder):
            name = item["Key"][len(folder) :]
            if _OFFSET_NAME.fullmatch(name):
                pieces[int(name)] = (item["Key"], int(item["Size"]))
        chain = []
        offset = 0
        while offset in pieces and pieces[offset][1] > 0:
            name, size = pieces[offset]
            chain.append((name, offset, size))
            offset += size
        return chain

    def partial_size(self, key: str) -> int:
        chain = self._chain(key)
        return chain[-1][1] + chain[-1][2] if chain else 0

    def append(self, key: str, offset: int, data: bytes) -> int:
        current = self.partial_size(key)
        if offset != current:
            raise OffsetMismatch(current)
        if not data:
            return current
        name = f"{self._partial_dir(key)}{offset:020d}"
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_sha256_b64(data),
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"storing bytes {offset}.. of {key}", exc) from exc
        return current + len(data)

    def read_partial(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        for name, _, _ in self._chain(key):
            data = self._get(name)
            for start in range(0, len(data), chunk):
                yield data[start : start + chunk]

    def discard_partial(self, key: str) -> None:
        self._purge(self._partial_dir(key))

    def commit(self, key: str) -> None:
        """Make the partial the committed object: one multipart upload of its pieces (each piece of at least
        the minimum part size copied as a part inside the store, the rest joined here), then the partial's
        objects are deleted. Nothing is committed if any step fails."""
        chain = self._chain(key)
        if not chain:
            self._put_segment(key, b"")
            return
        upload_id = self._create_multipart(key)
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        try:
            for name, _, size in chain:
                if not buffer and size >= MIN_PART_BYTES:
                    parts.append(self._copy_part(key, upload_id, len(parts) + 1, name))
                    continue
                buffer += self._get(name)
                while len(buffer) >= self.part_bytes:
                    parts.append(
                        self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer[: self.part_bytes]))
                    )
                    del buffer[: self.part_bytes]
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
        except (StoreUnavailable, FileNotFoundError) as exc:
            self._abort(key, upload_id)
            raise StoreUnavailable(f"object store: committing {key}: {exc}") from exc
        self._complete(key, upload_id, parts)
        try:
            self.discard_partial(key)
        except StoreUnavailable as exc:  # committed; the sweep deletes the partial of a stored segment
            log_event(log, "video.s3_partial_left", key=key, error=str(exc))

    def stage(self, key: str, size: int | None = None, sha256: str | None = None) -> StagedObject:
        """A staged upload: one streamed PUT when the segment's ``size`` and ``sha256`` (hex) are known,
        else a multipart upload."""
        self._segment(key)
        if size is not None and size > 0 and sha256 is not None:
            return S3StreamedPut(self, key, size, sha256)
        return S3StagedUpload(self, key)

    def commit_staged(self, staged: StagedObject) -> None:
        if not isinstance(staged, S3StreamedPut | S3StagedUpload):
            raise TypeError(f"not staged by this store: {staged!r}")
        staged.finish()

    def sweep_staging(self, older_than: float) -> list[str]:
        """Abort multipart uploads of segments started before ``older_than`` (a ``time.time()`` value) and
        never completed: what a crash leaves behind of staged objects and commits."""
        removed = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}segments/"
            )
            stale = [
                upload
                for page in pages
                for upload in page.get("Uploads", [])
                if upload["Initiated"].timestamp() < older_than
            ]
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("listing unfinished uploads", exc) from exc
        for upload in stale:
            key = upload["Key"].removeprefix(f"{self.prefix}segments/")
            if _KEY.fullmatch(key):
                self._abort(key, upload["UploadId"])
                removed.append(f"{key}#{upload['UploadId']}")
        return removed

    def partial_keys(self, older_than: float) -> list[str]:
        """Keys of partials whose newest piece was written before ``older_than``."""
        folder = f"{self.prefix}partial/"
        newest: dict[str, float] = {}
        for item in self._list(folder):
            key = item["Key"][len(folder) :].rpartition("/")[0]
            if _KEY.fullmatch(key):
                newest[key] = max(newest.get(key, 0.0), item["LastModified"].timestamp())
        return sorted(key for key, written in newest.items() if written < older_than)

    # -- committed segments ------------------------------------------------------------------------------

    def committed_size(self, key: str) -> int | None:
        return self._size(self._segment(key))

    def read_range(self, key: str, start: int, end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``start``..``end`` inclusive of the committed object, by one ranged GET."""
        name = self._segment(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name, Range=f"bytes={start}-{end}")["Body"]
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _code(exc) in _NOT_FOUND:
                raise FileNotFoundError(name) from exc
            raise _unavailable(f"reading {name}", exc) from exc
        try:
            yield from body.iter_chunks(chunk)
        except BotoCoreError as exc:
            raise _unavailable(f"reading {name}", exc) from exc
        finally:
            body.close()

    def open_committed(self, key: str) -> BinaryIO:
        name = self._segment(key)
        size = self._size(name)
        if size is None:
            raise FileNotFoundError(name)
        return io.BufferedReader(_RangeReader(self, name, size), buffer_size=64 * 1024)

    def free_bytes(self) -> int:
        return UNBOUNDED_FREE_BYTES

    def object_lock_until(self, key: str) -> datetime | None:
        """Until when the committed segment is locked (None: not locked, or no such object)."""
        return self._retention_of(self._segment(key), key)

    def retain_until(self, key: str, until: datetime) -> bool:
        """Extend the committed segment's lock to ``until`` (compliance mode never shortens; an earlier
        date leaves it as it is). False where the store does not lock evidence; ``FileNotFoundError`` if
        there is no such object."""
        if not self.locks_evidence():
            return False
        return self._extend_retention(self._segment(key), key, until)

    def _retention_of(self, name: str, label: str) -> datetime | None:
        """Until when the object ``name`` is locked (None: not locked, or no such object)."""
        try:
            found = self.client.get_object_retention(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND or "ObjectLock" in _code(exc) or _code(exc) == "InvalidRequest":
                return None
            raise _unavailable(f"reading the retention of {label}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"reading the retention of {label}", exc) from exc
        until = found.get("Retention", {}).get("RetainUntilDate")
        return until if isinstance(until, datetime) else None

    def _extend_retention(self, name: str, label: str, until: datetime) -> bool:
        """Set the object's compliance lock to ``until`` unless it already runs as long (never shortened:
        the store would refuse). ``FileNotFoundError`` if there is no such object."""
        current = self._retention_of(name, label)
        if current is not None and current >= until:
            return True
        if current is None and self._size(name) is None:
            raise FileNotFoundError(name)
        try:
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=name,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"extending the retention of {label}", exc) from exc
        return True

    def legal_hold(self, key: str, on: bool) -> bool:
        """Put the committed segment's Object Lock legal hold ON (kept whatever its retention date, until
        it is turned OFF) or OFF. False where the store does not lock evidence; ``FileNotFoundError`` if
        there is no such object. Setting the state it already has is harmless."""
        if not self.locks_evidence():
            return False
        name = self._segment(key)
        try:
            self.client.put_object_legal_hold(
                Bucket=self.bucket, Key=name, LegalHold={"Status": "ON" if on else "OFF"}
            )
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND or self._size(name) is None:  # some stores answer 500 for no object
                raise FileNotFoundError(name) from exc
            raise _unavailable(f"setting the legal hold of {key}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"setting the legal hold of {key}", exc) from exc
        return True

    def legal_hold_on(self, key: str) -> bool:
        """Whether the committed segment's legal hold is ON (False: OFF, none, or no such object)."""
        try:
            found = self.client.get_object_legal_hold(Bucket=self.bucket, Key=self._segment(key))
        except ClientError as exc:
            if (
                _code(exc) in _NOT_FOUND
                or "ObjectLock" in _code(exc)
                or "LegalHold" in _code(exc)
                or _code(exc) == "InvalidRequest"
            ):
                return False
            raise _unavailable(f"reading the legal hold of {key}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"reading the legal hold of {key}", exc) from exc
        return found.get("LegalHold", {}).get("Status") == "ON"

    def delete(self, key: str) -> bool:
        """Delete the committed segment (every version of it, where the bucket keeps versions) and any
        partial of it. True if something was deleted; ``ObjectLocked`` while its lock runs (nothing of the
        committed object is deleted then)."""
        name = self._segment(key)
        versions = [item for item in self._versions(name) if item["Key"] == name]
        for item in versions:
            self._delete_version(item)
        return bool(versions) | bool(self._purge(self._partial_dir(key)))

    # -- case files --------------------------------------------------------------------------------------

    def put_blob(self, area_key: Callable[[str], str], chunks: Iterable[bytes], limit: int) -> BlobStored:
        """Keep a file: spooled to a local temporary file while hashed (at most ``limit`` bytes, else
        ``BlobTooLarge`` and nothing kept), then uploaded under ``area_key(sha256)`` with its checksum."""
        return self.put_blob_until(area_key, chunks, limit, None)[0]

    def put_blob_until(
        self,
        area_key: Callable[[str], str],
        chunks: Iterable[bytes],
        limit: int,
        retain_until: datetime | None,
    ) -> tuple[BlobStored, datetime | None]:
        """``put_blob``, the object written under a compliance-mode lock until ``retain_until`` where the
        store locks evidence; returns the file and the lock's date (None: written without a lock)."""
        lock = retain_until if retain_until is not None and self.locks_evidence() else None
        lock_args = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": lock} if lock else {}
        hasher = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            for piece in chunks:
                size += len(piece)
                if size > limit:
                    raise BlobTooLarge(f"more than {limit} bytes")
                hasher.update(piece)
                spool.write(piece)
            digest = hasher.hexdigest()
            key = area_key(digest)
            name = self._blob(key)
            spool.seek(0)
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=name,
                    Body=spool,
                    ContentLength=size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=base64.b64encode(hasher.digest()).decode("ascii"),
                    **lock_args,
                )
            except (BotoCoreError, ClientError) as exc:
                raise _unavailable(f"storing {key}", exc) from exc
        return BlobStored(key, size, digest), lock

    def retain_blob_until(self, key: str, until: datetime) -> bool:
        """Extend a case file's lock to ``until`` (as ``retain_until``); False where the store does not
        lock evidence."""
        if not self.locks_evidence():
            return False
        return self._extend_retention(self._blob(key), key, until)

    def blob_lock_until(self, key: str) -> datetime | None:
        """Until when a case file is locked (None: not locked, or no such file)."""
        return self._retention_of(self._blob(key), key)

    def read_blob(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        size = self.blob_size(key)
        if size is None:
            raise FileNotFoundError(key)
        for start in range(0, size, chunk):
            yield self._get(self._blob(key), f"bytes={start}-{min(size, start + chunk) - 1}")

    def blob_size(self, key: str) -> int | None:
        return self._size(self._blob(key))
