"""HTTP API of the video store: signed, resumable segment uploads from devices, and range-request playback.

Every upload request is signed by the device key (``core.upload_auth``); a device may touch only
``/api/video/segments/<its own id>/...``. Nothing of a body is read before its request is authenticated and
its declared size is checked, and then never more than the limit. Numbers in paths and headers are ASCII
digits of bounded length; anything else is a 400 naming the field. See ``server.video.uploads`` for the
status codes.
Staging files that a crash left behind are swept at server start and every hour (``_lifespan``).
Playback needs a workspace login whose role may review, and is audited (``server.review.playback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from core.ascii_digits import parse_digits
from core.clock import Clock, SystemClock
from core.manifest import DEVICE_ID_PATTERN
from core.signing import BadSignature, public_from_b64
from core.structured_log import log_event
from core.upload_auth import (
    AppendClaim,
    BodyCorrupted,
    MalformedHeader,
    UploadAuthError,
    check_body,
    claimed_device,
    verify_append,
    verify_request_headers,
)
from server.db.devices import Device
from server.review.playback import playback_access
from server.video.body_hash import BackgroundHash
from server.video.storage import StagedObject, StoreUnavailable, VideoStore, open_store
from server.video.uploads import HASH_MISMATCH, PreparedAppend, SegmentUploads, UploadError, UploadState

log = logging.getLogger(__name__)
MAX_CHUNK_BYTES = 16 * 1024 * 1024
MAX_ENTRY_BODY_BYTES = 64 * 1024  # an announce's body: one signed manifest entry
FEED_BYTES = 1 << 20  # body pieces go to the hashing thread in blocks of this size (fewer hand-overs)
STAGING_GRACE_SECONDS = 3600.0  # a staging file untouched this long belongs to no request in progress
SWEEP_INTERVAL_SECONDS = 3600.0
STORE_RETRY_AFTER_S = 15  # Retry-After while the video store cannot be reached
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")
_AUTH_HEADERS = ("X-Patrol-Device", "X-Patrol-Timestamp", "X-Patrol-Signature")
_HEX64 = "^[0-9a-f]{64}$"
_HEADER_PATTERNS = {  # what each header must look like; anything else is answered 400 (or 401) with the reason
    "X-Patrol-Device": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "X-Patrol-Timestamp": "^[0-9]{1,12}$",
    "X-Patrol-Signature": "^[A-Za-z0-9+/]{86}==$",
    "X-Patrol-Content-SHA256": _HEX64,
    "X-Patrol-Prefix-SHA256-Before": _HEX64,
    "X-Patrol-Prefix-SHA256-After": _HEX64,
    "X-Patrol-Manifest-Entry": "^[A-Za-z0-9+/=]{1,21848}$",
    "Upload-Offset": "^[0-9]{1,19}$",
    "Range": "^bytes=[0-9]{0,19}-[0-9]{0,19}$",
}


def _documented(*headers: str, body: str | None = None) -> dict[str, Any]:
    """OpenAPI of what a route reads by hand: its headers with their form (all optional: a missing one is
    answered with the reason) and its body's media type, so that clients and schema-driven fuzzers see them."""
    extra: dict[str, Any] = {
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": _HEADER_PATTERNS[name]},
            }
            for name in headers
        ]
    }
    if body is not None:
        extra["requestBody"] = {"required": False, "content": {body: {"schema": {}}}}
    return extra


def _error(
    status: int, reason: str, retry: bool = False, offset: int | None = None, retry_after: int = 5
) -> JSONResponse:
    body: dict[str, object] = {"error": reason, "retry": retry}
    headers = {}
    if offset is not None:
        body["offset"] = offset
        headers["Upload-Offset"] = str(offset)
    if status == 503:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=headers)


def clock_of(app: Any) -> Clock:
    """The app's clock (``app.state.clock``, set by ``create_app``); the system clock if none was given."""
    clock: Clock | None = getattr(app.state, "clock", None)
    return clock if clock is not None else SystemClock()
def _store_down(exc: StoreUnavailable) -> JSONResponse:
    """The video store cannot be reached: the device keeps its bytes and tries again later."""
    log_event(log, "video.store_unavailable", error=str(exc)[:300])
    return _error(503, "video store unavailable, try again later", retry=True, retry_after=STORE_RETRY_AFTER_S)


def service_for(app: Any) -> SegmentUploads:
    """The app's upload service, made on first use from its configuration and database."""
    state = app.state
    service = getattr(state, "video_uploads", None)
    if service is None:
        config = state.config
        store: VideoStore = getattr(state, "video_store", None) or open_store(config.storage)
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
            clock_of(app).now,
            max_segment_bytes=config.storage.max_segment_bytes,
            max_concurrent=config.storage.max_concurrent_uploads,
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
        and not app.state.config.storage.url
        and not Path(app.state.config.storage.video_dir).is_dir()
    ):
        return
    service_for(app).sweep_orphans(STAGING_GRACE_SECONDS)


def store_free_bytes(app: Any) -> int | None:
    """Free bytes of the app's video store; None while its folder does not exist yet or cannot be read."""
    if (
        getattr(app.state, "video_store", None) is None
        and not Path(app.state.config.storage.video_dir).is_dir()
    ):
        return None
    try:
        return service_for(app).store.free_bytes()
    except OSError:
        return None


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
    ``SWEEP_INTERVAL_SECONDS``; at the end let go of the segment locks' database connections."""
    await _sweep_now(app)
    sweeper = asyncio.create_task(_sweep_periodically(app))
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        service = getattr(app.state, "video_uploads", None)
        if service is not None:
            service.locks.close()


router = APIRouter(prefix="/api/video", tags=["video"], lifespan=_lifespan)


def _target(device_id: str, seq: str) -> tuple[str, int]:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise UploadError(400, f"device id {device_id[:80]!r} is malformed")
    number = parse_digits(seq)
    if number is None or not 1 <= number <= 2**62:
        raise UploadError(400, f"segment number {seq[:40]!r}: expected 1 to 2^62 in ASCII digits")
    return device_id, number


def _declared_length(request: Request, limit: int) -> int | None:
    """The request's Content-Length (None when it sends none); 400 if malformed, 413 if over ``limit``."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    length = parse_digits(raw)
    if length is None:
        raise UploadError(400, "Content-Length header: expected ASCII digits")
    if length > limit:
        raise UploadError(413, f"the body may hold at most {limit} bytes, Content-Length says {length}")
    return length


async def _body_at_most(request: Request, limit: int) -> bytes:
    """The body, read only up to ``limit`` bytes: 413 as soon as it goes past."""
    parts: list[bytes] = []
    received = 0
    async for piece in request.stream():
        received += len(piece)
        if received > limit:
            raise UploadError(413, f"the body may hold at most {limit} bytes")
        parts.append(piece)
    return b"".join(parts)


def _device_key(headers: dict[str, str], service: SegmentUploads) -> tuple[str, Ed25519PublicKey]:
    """The claimed device and its registered key (a database read: call it on a worker thread)."""
    try:
        claimed = claimed_device(headers)
    except UploadAuthError as exc:
        raise UploadError(401, str(exc)) from exc
    key = service.public_key(claimed)
    if key is None:
        raise UploadError(401, f"device {claimed} is unknown or inactive")
    return claimed, key


def _authenticate_append(
    service: SegmentUploads, device_id: str, headers: dict[str, str], path: str, offset: int, now: datetime
) -> tuple[AppendClaim, Ed25519PublicKey]:
    """Check the signature of a data PUT from its headers (on a worker thread: the device's key is read from
    the database); its body is checked against the claim later."""
    claimed, key = _device_key(headers, service)
    try:
        claim = verify_append(key, headers, path, offset, now)
    except MalformedHeader as exc:
        raise UploadError(400, str(exc)) from exc
    except UploadAuthError as exc:
        raise UploadError(401, str(exc)) from exc
    if claimed != device_id:
        raise UploadError(403, f"device {claimed} may not write segments of {device_id}")
    return claim, key


async def _authenticate(request: Request, service: SegmentUploads, device_id: str) -> str:
    """Check a small request's signature from its headers, before any of its body is read; returns the
    body's signed SHA-256 for ``_check_body``."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    claimed, key = await run_in_threadpool(_device_key, headers, service)
    try:
        _, declared = verify_request_headers(
            key, headers, request.method, request.url.path, clock_of(request.app).now()
        )
    except MalformedHeader as exc:
        raise UploadError(400, str(exc)) from exc
    except UploadAuthError as exc:
        raise UploadError(401, str(exc)) from exc
    if claimed != device_id:
        raise UploadError(403, f"device {claimed} may not write segments of {device_id}")
    return declared


def _check_body(declared_sha256: str, body: bytes) -> None:
    try:
        check_body(declared_sha256, body)
    except BodyCorrupted as exc:
        raise UploadError(HASH_MISMATCH, str(exc), retry=True) from exc


@router.post(
    "/segments/{device_id}/{seq}",
    openapi_extra=_documented(*_AUTH_HEADERS, "X-Patrol-Content-SHA256", body="application/json"),
)
async def announce_segment(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    try:
        target = _target(device_id, seq)
        _declared_length(request, MAX_ENTRY_BODY_BYTES)
        declared = await _authenticate(request, service, device_id)
        body = await _body_at_most(request, MAX_ENTRY_BODY_BYTES)
        _check_body(declared, body)
        state = await run_in_threadpool(service.announce, *target, body)
    except UploadError as exc:
        return _error(exc.status, exc.reason, exc.retry, exc.offset)
    except StoreUnavailable as exc:
        return _store_down(exc)
    return JSONResponse(state.to_dict(), status_code=200, headers={"Upload-Offset": str(state.offset)})


@router.put(
    "/segments/{device_id}/{seq}/data",
    openapi_extra=_documented(
        *_AUTH_HEADERS,
        "Upload-Offset",
        "X-Patrol-Prefix-SHA256-Before",
        "X-Patrol-Prefix-SHA256-After",
        "X-Patrol-Manifest-Entry",
        body="application/octet-stream",
    ),
)
async def append_segment_data(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    try:
        target = _target(device_id, seq)
        length = _declared_length(request, MAX_CHUNK_BYTES)
        offset = parse_digits(request.headers.get("upload-offset", ""))
        if offset is None:
            raise UploadError(400, "Upload-Offset header: expected a non-negative integer in ASCII digits")
        headers = {k.lower(): v for k, v in request.headers.items()}
        # Everything that reads or writes the database, the store or the disk runs on a worker thread, in
        # two trips (one before the body, one after it): the event loop keeps serving other devices and
        # the review meanwhile.
        start = await run_in_threadpool(
            _start_append, service, target, headers, request.url.path, offset, length, clock_of(request.app).now()
        )
        claim, prepared, staged = start.claim, start.prepared, start.staged
        # The body goes through the segment's running SHA-256 as it arrives (one pass, overlapping the
        # transfer); ``append`` stores it only if that hash equals the signed one. A whole fresh segment goes
        # straight to its staging (hashed and written on a worker thread) and becomes the stored object only
        # if it verifies; other chunks wait in memory.
        hashing = (
            BackgroundHash(prepared.hasher, service.hash_workers, staged.write_all if staged else None)
            if prepared is not None
            else None
        )
        parts: list[bytes] = []
        block: list[bytes] = []  # pieces on their way to the hashing thread, handed over FEED_BYTES at a time
        in_block = received = 0
        try:
            async for piece in request.stream():
                received += len(piece)
                if received > MAX_CHUNK_BYTES:
                    raise UploadError(413, f"a chunk may hold at most {MAX_CHUNK_BYTES} bytes")
                if hashing is not None:
                    block.append(piece)
                    in_block += len(piece)
                    if in_block >= FEED_BYTES:
                        hashing.feed(block)
                        block, in_block = [], 0
                if staged is None:
                    parts.append(piece)
            if hashing is not None and block:
                hashing.feed(block)
            state = await run_in_threadpool(
                _finish_append, service, target, claim, b"".join(parts), prepared, staged, hashing
            )
        finally:
            if hashing is not None:
                hashing.close()
                if staged is not None:  # let the worker finish with the staging before it is dropped
                    with contextlib.suppress(Exception):
                        await hashing.finish()
            if staged is not None:
                staged.discard()
    except UploadError as exc:
        return _error(exc.status, exc.reason, exc.retry, exc.offset)
    except StoreUnavailable as exc:
        return _store_down(exc)
    metrics = request.app.state.metrics
    metrics.upload_bytes.inc(received)
    if state.state == "stored":
        metrics.segments_stored.inc()
    status = 201 if state.state == "stored" else 200
    return JSONResponse(state.to_dict(), status_code=status, headers={"Upload-Offset": str(state.offset)})


@dataclass(frozen=True)
class _AppendStart:
    """What a data PUT needs before its body: the verified claim, the running hash to feed (None: ``append``
    decides from the stored bytes) and, for a whole fresh segment, the staging its body goes to."""

    claim: AppendClaim
    prepared: PreparedAppend | None
    staged: StagedObject | None


def _start_append(
    service: SegmentUploads,
    target: tuple[str, int],
    headers: dict[str, str],
    path: str,
    offset: int,
    length: int | None,
    now: datetime,
) -> _AppendStart:
    """Authenticate a data PUT, take the announce its first chunk carries, and prepare the body's hashing
    (on a worker thread, before any of the body is read)."""
    claim, key = _authenticate_append(service, target[0], headers, path, offset, now)
    announced = entry = None
    if claim.entry is not None:  # announce and append in one request (the segment's first chunk)
        announced, entry = service.announce_for_append(
            *target, claim.entry, key, claim.offset, length if length is not None else -1
        )
    prepared = service.begin_append(*target, claim, announced, entry)
    if prepared is None and entry is not None and claim.entry is not None:  # announce as usual after all
        service.announce(*target, claim.entry, device_key=key)
    staged = None
    if prepared is not None and prepared.entry is not None:
        staged = service.store.stage(prepared.key, prepared.size, prepared.sha256)
    return _AppendStart(claim, prepared, staged)


def _finish_append(
    service: SegmentUploads,
    target: tuple[str, int],
    claim: AppendClaim,
    data: bytes,
    prepared: PreparedAppend | None,
    staged: StagedObject | None,
    hashing: BackgroundHash | None,
) -> UploadState:
    """Once the body is in: wait for its hashing (and staging) to end, make staged bytes durable, then
    ``append`` (on a worker thread). The staged bytes' fsync comes before ``append`` takes an upload slot, so
    that the slots (and the segment's lock) are held only for the commit itself: a dock rush waiting for the
    disk is not answered busy."""
    if hashing is not None:
        try:
            hashing.wait()
            if staged is not None:
                staged.persist()
        except StoreUnavailable:
            raise
        except OSError as exc:
            full = exc.errno == errno.ENOSPC
            raise UploadError(507 if full else 503, f"cannot store the body: {exc}", retry=not full) from exc
    return service.append(*target, claim, data, prepared, staged)


@router.get(
    "/segments/{device_id}/{seq}", openapi_extra=_documented(*_AUTH_HEADERS, "X-Patrol-Content-SHA256")
)
async def segment_status(device_id: str, seq: str, request: Request) -> Response:
    service = uploads_for(request)
    try:
        target = _target(device_id, seq)
        _check_body(await _authenticate(request, service, device_id), b"")  # a status request has no body
        state = await run_in_threadpool(service.status, *target)
    except UploadError as exc:
        return _error(exc.status, exc.reason, exc.retry, exc.offset)
    except StoreUnavailable as exc:
        return _store_down(exc)
    if state is None:
        return _error(404, f"segment {seq} is unknown")
    return JSONResponse(state.to_dict(), headers={"Upload-Offset": str(state.offset)})


@router.api_route(
    "/segments/{device_id}/{seq}/content",
    methods=["GET", "HEAD"],
    dependencies=[Depends(playback_access)],
    openapi_extra=_documented("Range"),
)
def segment_content(device_id: str, seq: str, request: Request) -> Response:
    """The stored segment's bytes, whole or one ``Range: bytes=START-END``; HEAD answers the same headers
    without the bytes. A malformed Range is a 400; one outside the segment a 416."""
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
    head = request.method == "HEAD"
    if spec is None:
        headers |= {"Content-Length": str(size)}
        if head:
            return Response(headers=headers)
        return _stream(service.store, key, 0, size - 1, 200, headers)
    match = _RANGE.fullmatch(spec.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return _error(400, "Range header: expected bytes=START-END, bytes=START- or bytes=-LENGTH (ASCII digits)")
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:
        start, end = max(0, size - int(match.group(2))), size - 1
    if start >= size or end < start:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers |= {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}
    if head:
        return Response(status_code=206, headers=headers)
    return _stream(service.store, key, start, end, 206, headers)


def _stream(store: VideoStore, key: str, start: int, end: int, status: int, headers: dict[str, str]) -> Response:
    """The bytes as a streamed response; the first piece is read before the response starts, so a store
    that cannot be reached answers 503 instead of a cut-off body."""
    pieces = store.read_range(key, start, end)
    try:
        first = next(pieces, b"")
    except StoreUnavailable as exc:
        return _store_down(exc)
    except FileNotFoundError:
        return _error(404, "the stored object is missing")

    def chunks() -> Iterator[bytes]:
        yield first
        yield from pieces

    return StreamingResponse(chunks(), status_code=status, headers=headers)
