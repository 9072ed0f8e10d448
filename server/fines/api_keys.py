"""API keys of the systems that call the fines API, and a rate limit per key.

A key is ``pk_`` + 32 random bytes (URL-safe base64); the server keeps only its SHA-256, with the client's
name, its scopes (``lookup`` the unpaid look-up, ``import`` fine imports, ``post`` postal outcomes,
``bailiff`` hand-over batches and acknowledgements) and its requests per minute. ``authenticate`` answers
``None`` for anything but an active key with the scope. ``RateLimiter`` is a token bucket per client on an
injected monotonic clock (per server process).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.api_clients import ApiClient

SCOPES = frozenset({"lookup", "import", "post", "bailiff"})
CLIENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
KEY_SHAPE = re.compile(r"^pk_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class Client:
    name: str
    scopes: frozenset[str]
    per_minute: int


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


def add_client(session: Session, name: str, scopes: set[str], per_minute: int, now: datetime) -> str:
    """Register a client; returns its key (shown once, never stored)."""
    if not CLIENT_NAME.match(name):
        raise ValueError(f"client name {name!r}: lower-case letters, digits, '_', '.', '-' (up to 64)")
    unknown = scopes - SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes {sorted(unknown) or '(none)'}: choose from {', '.join(sorted(SCOPES))}")
    if not 1 <= per_minute <= 100_000:
        raise ValueError(f"per_minute {per_minute}: 1..100000")
    if session.get(ApiClient, name) is not None:
        raise ValueError(f"client {name!r} exists already")
    key = "pk_" + secrets.token_urlsafe(32)
    session.add(
        ApiClient(name=name, key_sha256=key_hash(key), scopes=" ".join(sorted(scopes)), per_minute=per_minute,
                  active=True, created_at=now)
    )  # fmt: skip
    return key


def authenticate(session: Session, key: str | None, scope: str) -> Client | None:
    """The active client holding ``key`` if it has ``scope``; None otherwise (the reason is not told)."""
    if not key or not KEY_SHAPE.match(key):
        return None
    row = session.execute(
        select(ApiClient.name, ApiClient.scopes, ApiClient.per_minute, ApiClient.active).where(
            ApiClient.key_sha256 == key_hash(key)
        )
    ).first()
    if row is None or not row.active:
        return None
    scopes = frozenset(row.scopes.split())
    return Client(row.name, scopes, row.per_minute) if scope in scopes else None


class RateLimiter:
    """Token bucket per client: ``per_minute`` requests a minute, bursts up to that many."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def allow(self, client: str, per_minute: int) -> float:
        """0.0 when the request may go ahead, else the seconds until it may."""
        now = self._monotonic()
        rate = per_minute / 60.0
        with self._lock:
            tokens, at = self._buckets.get(client, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / rate
