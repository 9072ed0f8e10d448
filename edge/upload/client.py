"""HTTP client of the segment upload protocol: every request signed with the device key (``core.upload_auth``).

Data requests are signed over the SHA-256 of the segment prefix before and after the chunk, which the
uploader keeps running as it reads the file (one hash pass over the segment, see ``core.upload_auth``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from core.clock import Clock, SystemClock
from core.upload_auth import sign_append, sign_request
from edge.identity import DeviceIdentity


class UploadRejected(Exception):
    """The server refused a request. ``retry`` says whether sending again can help."""

    def __init__(
        self, status: int, reason: str, retry: bool, offset: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry = retry
        self.offset = offset
        self.retry_after = retry_after  # seconds the server asked to wait (Retry-After), if it said


MAX_RETRY_AFTER_S = 3600.0


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (ASCII digits, at most ``MAX_RETRY_AFTER_S``); None if absent or
    in another form."""
    text = value.strip() if value is not None else ""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 9:
        return None  # isdigit alone takes "²" and other digits that float() refuses
    return min(float(text), MAX_RETRY_AFTER_S)


RETRYABLE = {409, 460, 503}


@dataclass(frozen=True)
class ServerState:
    state: str
    offset: int
    size: int
    sha256: str


class UploadClient:
    def __init__(
        self,
        base_url: str,
        identity: DeviceIdentity,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.http = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0))
        self.clock = clock or SystemClock()
        self._prefix = httpx.URL(self.base_url).path.rstrip("/")

    def _path(self, seq: int, suffix: str = "") -> str:
        return f"{self._prefix}/api/video/segments/{self.identity.device_id}/{seq}{suffix}"

    def _send(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        signed: dict[str, str] | None = None,
    ) -> ServerState:
        if signed is None:
            signed = sign_request(
                self.identity.private_key, self.identity.device_id, method, path, body, self.clock.now()
            )
        url = httpx.URL(self.base_url).copy_with(path=path)
        response = self.http.request(method, url, content=body, headers={**signed, **(headers or {})})
        data: dict[str, Any]
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:200]}
        if response.status_code >= 400:
            offset = data.get("offset")
            raise UploadRejected(
                response.status_code,
                str(data.get("error", "")),
                bool(data.get("retry", response.status_code in RETRYABLE))
                or response.status_code in RETRYABLE,
                offset if isinstance(offset, int) else None,
                retry_after_seconds(response.headers.get("retry-after")),
            )
        return ServerState(str(data["state"]), int(data["offset"]), int(data["size"]), str(data["sha256"]))

    def status(self, seq: int) -> ServerState | None:
        try:
            return self._send("GET", self._path(seq))
        except UploadRejected as exc:
            if exc.status == 404:
                return None
            raise

    def announce(self, seq: int, entry_json: str) -> ServerState:
        return self._send(
            "POST", self._path(seq), entry_json.encode("utf-8"), {"Content-Type": "application/json"}
        )

    def append(
        self,
        seq: int,
        offset: int,
        chunk: bytes,
        sha256_before: str,
        sha256_after: str,
        entry_json: str | None = None,
    ) -> ServerState:
        """Send ``chunk`` at ``offset``; the hashes are of the segment's bytes before and after it. With
        ``entry_json`` the same request announces the segment (saves a round trip for a fresh segment)."""
        path = self._path(seq, "/data")
        signed = sign_append(
            self.identity.private_key,
            self.identity.device_id,
            path,
            offset,
            sha256_before,
            sha256_after,
            self.clock.now(),
            None if entry_json is None else entry_json.encode("utf-8"),
        )
        return self._send("PUT", path, chunk, {"Content-Type": "application/octet-stream"}, signed)
