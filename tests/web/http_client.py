"""Ways to talk to a live server as the outside world does: raw bytes on a socket (for headers no HTTP
library would send), a supervisor logged in through the login form, and a device's signed requests."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from core.upload_auth import sign_request
from edge.identity import DeviceIdentity, load_identity

from ..browser_support import LiveServer


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def raw_http(url: str, request: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``request`` (bytes as they are) to the server of ``url`` and read its answer. Only the request's
    head need be sent: the server must answer without waiting for a body it should not read. A server that
    does not answer within ``timeout`` raises ``TimeoutError``."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(status, headers, body)


def request_head(method: str, path: str, headers: dict[str, str] | list[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 request head (no body) with ``Connection: close``; header values go out as Latin-1."""
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def login_form(client: httpx.Client, base: str) -> str:
    """Open the login page; returns its form token."""
    page = client.get(f"{base}/review/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None, page.text
    return token.group(1)


def post_login(client: httpx.Client, base: str, login: str, password: str, next_url: str = "") -> httpx.Response:
    token = login_form(client, base)
    return client.post(
        f"{base}/review/login",
        data={"csrf": token, "login": login, "password": password, "next": next_url},
        follow_redirects=False,
    )


def supervisor_client(server: LiveServer) -> httpx.Client:
    """An HTTP client with the cookies of a logged-in supervisor."""
    client = httpx.Client(timeout=30)
    response = post_login(client, server.url, server.login, server.password)
    assert response.status_code == 303, response.text
    return client


def provision_device(server: LiveServer, directory: Path, device_id: str) -> DeviceIdentity:
    """A device registered with ``patrol-server device add``, and its key."""
    server.cli("device", "add", device_id, "--out", str(directory))
    return load_identity(device_id, directory / f"{device_id}.key")


def signed(identity: DeviceIdentity, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    return sign_request(identity.private_key, identity.device_id, method, path, body, datetime.now(UTC))
