"""The ``VideoStore`` contract, the same tests on both stores: the filesystem folder (embedded default) and
S3-compatible object storage (a real SeaweedFS, ``tests/s3_support.py``). Plus what only object storage does:
multipart parts with SHA-256 checksums, Object Lock on committed segments, and refusing to delete locked ones."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.config import S3Section, StorageSection
from server.video.s3_store import MIN_PART_BYTES, S3Store, S3StreamedPut
from server.video.storage import (
    BlobTooLarge,
    FilesystemStore,
    ObjectLocked,
    OffsetMismatch,
    StoreUnavailable,
    VideoStore,
    open_store,
)
from tests.s3_support import SeaweedServer

KEY = "DEV-ST1/0000000001.mp4"


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> VideoStore:
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "video")
    s3: S3Store = request.getfixturevalue("s3_store")
    return s3


def _read_all(store: VideoStore, key: str) -> bytes:
    size = store.committed_size(key)
    assert size is not None
    return b"".join(store.read_range(key, 0, size - 1)) if size else b""


def test_appends_at_the_current_offset_build_the_partial_and_a_wrong_offset_changes_nothing(
    store: VideoStore,
) -> None:
    assert store.partial_size(KEY) == 0
    assert store.append(KEY, 0, b"abc") == 3
    assert store.append(KEY, 3, b"defg") == 7
    with pytest.raises(OffsetMismatch) as err:
        store.append(KEY, 3, b"zzz")
    assert err.value.current == 7
    assert store.partial_size(KEY) == 7
    assert b"".join(store.read_partial(KEY)) == b"abcdefg"
    assert store.committed_size(KEY) is None


def test_commit_makes_the_partial_the_committed_object_readable_by_range(store: VideoStore) -> None:
    data = os.urandom(300_000)
    for start in range(0, len(data), 65_536):
        store.append(KEY, start, data[start : start + 65_536])
    store.commit(KEY)
    assert store.committed_size(KEY) == len(data)
    assert _read_all(store, KEY) == data
    assert b"".join(store.read_range(KEY, 1000, 1999)) == data[1000:2000]
    assert b"".join(store.read_range(KEY, len(data) - 5, len(data) - 1)) == data[-5:]
    with store.open_committed(KEY) as fh:
        fh.seek(70_000)
        assert fh.read(10) == data[70_000:70_010]
        fh.seek(-4, os.SEEK_END)
        assert fh.read() == data[-4:]


def test_discarded_partial_starts_again_from_zero(store: VideoStore) -> None:
    store.append(KEY, 0, b"unverified?")
    store.discard_partial(KEY)
    assert store.partial_size(KEY) == 0
    assert list(store.read_partial(KEY)) == []


def test_staged_object_becomes_the_committed_object_only_when_committed(store: VideoStore) -> None:
    data = os.urandom(2 * MIN_PART_BYTES + 12_345)  # two full parts and a short last one on S3
    staged = store.stage(KEY)
    for start in range(0, len(data), 1 << 20):
        staged.write(data[start : start + (1 << 20)])
    assert staged.size == len(data)
    assert store.committed_size(KEY) is None
    store.commit_staged(staged)
    staged.discard()  # after the commit: nothing to drop
    assert _read_all(store, KEY) == data
    assert store.partial_size(KEY) == 0


def test_staged_segment_of_known_size_and_hash_is_stored_exactly(store: VideoStore) -> None:
    data = os.urandom(3 * MIN_PART_BYTES // 2)
    staged = store.stage(KEY, len(data), hashlib.sha256(data).hexdigest())
    for start in range(0, len(data), 1 << 20):
        staged.write(data[start : start + (1 << 20)])
    store.commit_staged(staged)
    assert _read_all(store, KEY) == data


def test_streamed_segment_whose_bytes_miss_the_signed_hash_is_never_stored(s3_store: S3Store) -> None:
    """The store itself checks the SHA-256 the manifest entry signed: other bytes make no object."""
    data = os.urandom(200_000)
    staged = s3_store.stage(KEY, len(data), hashlib.sha256(b"what the device signed").hexdigest())
    staged.write(data)
    with pytest.raises(StoreUnavailable):
        s3_store.commit_staged(staged)
    assert s3_store.committed_size(KEY) is None


def test_streamed_segment_dropped_midway_is_never_stored(s3_store: S3Store) -> None:
    data = os.urandom(300_000)
    staged = s3_store.stage(KEY, len(data), hashlib.sha256(data).hexdigest())
    staged.write(data[:100_000])
    staged.discard()
    assert isinstance(staged, S3StreamedPut) and staged._put is not None
    assert isinstance(staged._put.exception(timeout=60), StoreUnavailable), "the PUT ends without the body"
    assert s3_store.committed_size(KEY) is None


def test_discarded_staged_object_leaves_nothing(store: VideoStore) -> None:
    staged = store.stage(KEY)
    staged.write(os.urandom(MIN_PART_BYTES + 10))
    staged.discard()
    assert store.committed_size(KEY) is None
    assert store.partial_size(KEY) == 0


def test_case_files_are_kept_by_their_hash_and_too_large_ones_not_at_all(store: VideoStore) -> None:
    data = os.urandom(100_000)
    stored = store.put_blob(lambda digest: f"cases/7/{digest}", [data[:50_000], data[50_000:]], 1 << 20)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.blob_size(stored.key) == len(data)
    assert b"".join(store.read_blob(stored.key, chunk=30_000)) == data
    with pytest.raises(BlobTooLarge):
        store.put_blob(lambda digest: f"cases/7/{digest}", [b"x" * 2000], 1000)
    assert store.blob_size(f"cases/7/{hashlib.sha256(b'x' * 2000).hexdigest()}") is None


def test_partials_of_keys_are_listed_by_age(store: VideoStore) -> None:
    store.append(KEY, 0, b"abc")
    assert store.partial_keys(older_than=time.time() + 60) == [KEY]
    assert store.partial_keys(older_than=time.time() - 3600) == []


def test_keys_that_are_not_segment_keys_are_refused(store: VideoStore) -> None:
    for bad in ("../etc/passwd", "DEV/1.mp4", "DEV-ST1/0000000001.mp4/../x"):
        with pytest.raises(ValueError):
            store.append(bad, 0, b"x")


def test_large_partial_pieces_are_copied_as_parts_and_small_ones_joined(s3_store: S3Store) -> None:
    """Pieces of at least 5 MiB become parts inside the store; a small middle piece is joined with its
    neighbours; the committed object is exactly the bytes appended, with an S3 SHA-256 checksum."""
    pieces = [os.urandom(MIN_PART_BYTES + 1), os.urandom(1000), os.urandom(MIN_PART_BYTES), os.urandom(77)]
    offset = 0
    for piece in pieces:
        offset = s3_store.append(KEY, offset, piece)
    s3_store.commit(KEY)
    data = b"".join(pieces)
    assert _read_all(s3_store, KEY) == data
    head = s3_store.client.head_object(
        Bucket=s3_store.bucket, Key=s3_store._segment(KEY), ChecksumMode="ENABLED"
    )
    assert head["ContentLength"] == len(data)
    assert head.get("ChecksumSHA256"), "the object carries its SHA-256 checksum"
    assert s3_store.partial_size(KEY) == 0, "the partial's pieces are gone once committed"


def test_committed_evidence_is_locked_in_compliance_mode_and_not_deleted_while_locked(
    s3_store: S3Store,
) -> None:
    s3_store.append(KEY, 0, b"evidence")
    s3_store.commit(KEY)
    assert s3_store.locks_evidence()
    until = s3_store.object_lock_until(KEY)
    assert until is not None and until > datetime.now(UTC) + timedelta(hours=23)
    with pytest.raises(ObjectLocked):
        s3_store.delete(KEY)
    assert _read_all(s3_store, KEY) == b"evidence"
    later = until + timedelta(days=365)
    assert s3_store.retain_until(KEY, later)
    assert s3_store.object_lock_until(KEY) == later.replace(microsecond=0)
    assert s3_store.retain_until(KEY, until)  # an earlier date never shortens the lock
    assert s3_store.object_lock_until(KEY) == later.replace(microsecond=0)


def test_delete_in_a_bucket_without_object_lock_removes_the_segment(seaweedfs: SeaweedServer) -> None:
    store = seaweedfs.store(seaweedfs.new_bucket(object_lock=False))
    store.append(KEY, 0, b"old footage")
    store.commit(KEY)
    assert not store.locks_evidence()
    assert store.object_lock_until(KEY) is None
    assert store.delete(KEY) is True
    assert store.committed_size(KEY) is None
    assert store.delete(KEY) is False


def test_object_lock_required_but_missing_refuses_to_store(seaweedfs: SeaweedServer) -> None:
    store = seaweedfs.store(seaweedfs.new_bucket(object_lock=False))
    store.object_lock = "require"
    staged = store.stage(KEY)
    staged.write(b"x")
    with pytest.raises(StoreUnavailable, match="Object Lock"):
        store.commit_staged(staged)
    assert store.committed_size(KEY) is None


def test_a_store_that_cannot_be_reached_raises_store_unavailable(tmp_path: Path) -> None:
    from simulators.demo import free_port

    config = StorageSection(
        url="s3://nowhere/video",
        s3=S3Section(endpoint=f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b", timeout_s=2),
    )
    store = open_store(config)
    assert isinstance(store, S3Store)
    with pytest.raises(StoreUnavailable):
        store.partial_size(KEY)
    with pytest.raises(StoreUnavailable):
        store.committed_size(KEY)
    assert isinstance(open_store(StorageSection(video_dir=tmp_path / "v")), FilesystemStore)
