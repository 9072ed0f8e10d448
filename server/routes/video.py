"""HTTP API of the video store: signed, resumable segment uploads from devices, and range-request playback.

Every upload request is signed by the device key (``core.upload_auth``); a device may touch only
``/api/video/segments/<its own id>/...``. See ``server.video.uploads`` for the status codes.
Staging files that a crash left behind are swept at server start and every hour (``_lifespan``).
Playback is guarded by ``playback_guard``: the supervisor UI's authentication replaces it with
``app.dependency_overrides[playback_guard] = ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from core.manifest import DEVICE_ID_PATTERN
from core.signing import BadSignature, public_from_b64
from core.structured_log import log_event
from core.upload_auth import (
    AppendClaim,
    BodyCorrupted,
    UploadAuthError,
    claimed_device,
    verify_append,
    verify_request,
)
from server.db.devices import Device
from server.video.body_hash import BackgroundHash
from server.video.storage import FilesystemStore, VideoStore
from server.video.uploads import HASH_MISMATCH, SegmentUploads, UploadError

log = logging.getLogger(__name__)
MAX_CHUNK_BYTES = 16 * 1024 * 1024
FEED_BYTES = 1 << 20  # body pieces go to the hashing thread in blocks of this size (fewer hand-overs)
STAGING_GRACE_SECONDS = 3600.0  # a staging file untouched this long belongs to no request in progress
SWEEP_INTERVAL_SECONDS = 3600.0
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _error(status: int, reason: str, retry: bool = False, offset: int | None = None) -> JSONResponse:
    body: dict[str, object] = {"error": reason, "retry": retry}
    headers = {}
    if offset is not None:
        body["offset"] = offset
        headers["Upload-Offset"] = str(offset)
    if status == 503:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=status, headers=headers)


def service_for(app: Any) -> SegmentUploads:
    """The app's upload service, made on first use from its configuration and database."""
    state = app.state
    service = getattr(state, "video_uploads", None)
    if service is None:
        config = state.config
        store: VideoStore = getattr(state, "video_store", None) or FilesystemStore(config.storage.video_dir)
        sessions = state.sessions

        def public_key(device_id: str) -> Ed25519PublicKey | None:
            # Looked up on every request, so that deactivating a device takes effect at once.
            with sessions() as session:
                found = session.execute(
                    select(Device.public_key_b64, Device.active).where(Device.device_id == device_id)
                ).first()
            if found is None or not found.active:
                return None
            return _parsed_key(found.public_key_b64)

        service = SegmentUploads(
            sessions,
            store,
            public_key,
            lambda: datetime.now(UTC),
            max_segment_bytes=config.storage.max_segment_bytes,
        )
        state.video_uploads = service
    return service


def uploads_for(request: Request) -> SegmentUploads:
    return service_for(request.app)


@functools.lru_cache(maxsize=4096)
def _parsed_key(public_key_b64: str) -> Ed25519PublicKey | None:
    try:
        return public_from_b64(public_key_b64)
    except BadSignature:
        return None


def _sweep(app: Any) -> None:
    """Delete staging files a crash left behind (``SegmentUploads.sweep_orphans``); nothing to do while the
    video folder does not exist yet."""
    if (
        getattr(app.state, "video_store", None) is None
        and not Path(app.state.config.storage.video_dir).is_dir()
    ):
        return
    service_for(app).sweep_orphans(STAGING_GRACE_SECONDS)


async def _sweep_now(app: Any) -> None:
    try:
        await asyncio.to_thread(_sweep, app)
    except (OSError, SQLAlchemyError) as exc:  # the next sweep tries again
        log_event(log, "video.staging_sweep_failed", error=str(exc))


async def _sweep_periodically(app: Any) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
        await _sweep_now(app)


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Sweep orphaned staging files at server start, before serving, and then every
    ``SWEEP_INTERVAL_SECONDS``."""
    await _sweep_now(app)
    sweeper = asyncio.create_task(_sweep_periodically(app))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper


router = APIRouter(prefix="/api/video", tags=["video"], lifespan=_lifespan)


def _target(device_id: str, seq: str) -> tuple[str, int]:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise UploadError(400, f"device id {device_id[:80]!r} is malformed")
    if not seq.isdigit() or not 1 <= int(seq) <= 2**62 or len(seq) > 19:
        raise UploadError(400, f"segment number {seq[:40]!r} is not a positive integer")
    return device_id, int(seq)


async def _device_key(headers: dict[str, str], service: SegmentUploads) -> tuple[str, Ed25519PublicKey]:
    try:
        claimed = claimed_device(headers)
    except UploadAuthError as exc:
        raise UploadError(401, str(exc)) from exc
    key = await run_in_threadpool(service.public_key, claimed)  # a database read: off the event loop
    if key is None:
        raise UploadError(401, f"device {claimed} is unknown or inactive")
    return claimed, key


async def _authenticate_append(
    request: Request, service: SegmentUploads, device_id: str, offset: int
) -> tuple[AppendClaim, Ed25519PublicKey]:
    """Check the signature of a data PUT from its headers; its body is checked against the claim later."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    claimed, key = await _device_key(headers, service)
    try:
        claim = verify_append(key, headers, request.url.path, offset, datetime.now(UTC))
    except UploadAuthError as exc:
        raise UploadError(401, str(exc)) from exc
    if claimed != device_id:
        raise UploadError(403, f"device {claimed} may not write segments of {device_id}")
    return claim, key


async def _authenticate(request: Request, service: SegmentUploads, device_id: str, body: bytes) -> None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    claimed, key = await _device_key(headers, service)
    try:
        verify_request(key, headers, request.method, request.url.path, body, datetime.now(UTC))
    except BodyCorrupted as exc:
        raise UploadError(HASH_MISMATCH, str(exc), retry=True) from exc
    except UploadAuthError as exc:
        raise UploadError(401, str(exc)) from exc
    if claimed != device_id:
        raise UploadError(403, f"device {claimed} may not write segments of {device_id}")


@router.post("/segments/{device_id}/{seq}")
async def announce_segment(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    body = await request.body()
    try:
        target = _target(device_id, seq)
        await _authenticate(request, service, device_id, body)
        if len(body) > 64 * 1024:
            raise UploadError(413, "manifest entry is too large")
        state = await run_in_threadpool(service.announce, *target, body)
    except UploadError as exc:
        return _error(exc.status, exc.reason, exc.retry, exc.offset)
    return JSONResponse(state.to_dict(), status_code=200, headers={"Upload-Offset": str(state.offset)})


@router.put("/segments/{device_id}/{seq}/data")
async def append_segment_data(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    try:
        target = _target(device_id, seq)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_CHUNK_BYTES):
            raise UploadError(413, f"a chunk may hold at most {MAX_CHUNK_BYTES} bytes")
        raw_offset = request.headers.get("upload-offset", "")
        if not raw_offset.isdigit() or len(raw_offset) > 19:
            raise UploadError(400, "Upload-Offset header: expected a non-negative integer")
        claim, key = await _authenticate_append(request, service, device_id, int(raw_offset))
        # Every call below that reads or writes the database or waits for the disk (fsync) runs on a
        # worker thread: the event loop keeps serving other devices and the review meanwhile.
        announced = entry = None
        if claim.entry is not None:  # announce and append in one request (the segment's first chunk)
            announced, entry = await run_in_threadpool(
                service.announce_for_append,
                *target,
                claim.entry,
                key,
                claim.offset,
                int(length) if length is not None else -1,
            )
        # The body goes through the segment's running SHA-256 as it arrives (one pass, overlapping the
        # transfer); ``append`` stores it only if that hash equals the signed one.
        prepared = await run_in_threadpool(service.begin_append, *target, claim, announced, entry)
        if prepared is None and entry is not None and claim.entry is not None:  # raced: announce as usual
            await run_in_threadpool(service.announce, *target, claim.entry, device_key=key)
        # A whole fresh segment goes straight to a staging file as it arrives (hashed and written on a
        # worker thread); it becomes the stored object only if it verifies. Other chunks wait in memory.
        staged = service.store.stage(prepared.key) if prepared is not None and prepared.entry else None
        hashing = (
            BackgroundHash(prepared.hasher, service.hash_workers, staged.write if staged else None)
            if prepared is not None
            else None
        )
        parts: list[bytes] = []
        block = bytearray()  # pieces on their way to the hashing thread, handed over FEED_BYTES at a time
        received = 0
        try:
            try:
                async for piece in request.stream():
                    received += len(piece)
                    if received > MAX_CHUNK_BYTES:
                        raise UploadError(413, f"a chunk may hold at most {MAX_CHUNK_BYTES} bytes")
                    if hashing is not None:
                        block += piece
                        if len(block) >= FEED_BYTES:
                            hashing.feed(block)
                            block = bytearray()
                    if staged is None:
                        parts.append(piece)
                if hashing is not None:
                    if block:
                        hashing.feed(block)
                    await hashing.finish()
            except OSError as exc:
                full = exc.errno == errno.ENOSPC
                raise UploadError(
                    507 if full else 503, f"cannot store the body: {exc}", retry=not full
                ) from exc
            state = await run_in_threadpool(service.append, *target, claim, b"".join(parts), prepared, staged)
        finally:
            if hashing is not None:
                hashing.close()
                if staged is not None:  # let the worker finish with the file before it is dropped
                    with contextlib.suppress(Exception):
                        await hashing.finish()
            if staged is not None:
                staged.discard()
    except UploadError as exc:
        return _error(exc.status, exc.reason, exc.retry, exc.offset)
    status = 201 if state.state == "stored" else 200
    return JSONResponse(state.to_dict(), status_code=status, headers={"Upload-Offset": str(state.offset)})


@router.get("/segments/{device_id}/{seq}")
async def segment_status(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    try:
        target = _target(device_id, seq)
        await _authenticate(request, service, device_id, b"")
        state = await run_in_threadpool(service.status, *target)
    except UploadError as exc:
        return _error(exc.status, exc.reason, exc.retry, exc.offset)
    if state is None:
        return _error(404, f"segment {seq} is unknown")
    return JSONResponse(state.to_dict(), headers={"Upload-Offset": str(state.offset)})


def playback_guard() -> None:
    """Replaced by the supervisor UI's authentication (``app.dependency_overrides``)."""


@router.get("/segments/{device_id}/{seq}/content", dependencies=[Depends(playback_guard)])
def segment_content(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    try:
        target = _target(device_id, seq)
    except UploadError as exc:
        return _error(exc.status, exc.reason)
    state = service.status(*target)
    if state is None or state.state != "stored":
        return _error(404, f"segment {seq} of {device_id} is not stored")
    key = f"{target[0]}/{target[1]:010d}.mp4"
    size = state.size
    headers = {"Accept-Ranges": "bytes", "Content-Type": "video/mp4", "ETag": f'"{state.sha256}"'}
    spec = request.headers.get("range")
    if spec is None:
        return StreamingResponse(
            _chunks(service.store, key, 0, size - 1), headers=headers | {"Content-Length": str(size)}
        )
    match = _RANGE.fullmatch(spec.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:
        start, end = max(0, size - int(match.group(2))), size - 1
    if start >= size or end < start:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers |= {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
    return StreamingResponse(_chunks(service.store, key, start, end), status_code=206, headers=headers)


def _chunks(store: VideoStore, key: str, start: int, end: int) -> Iterator[bytes]:
    yield from store.read_range(key, start, end)
