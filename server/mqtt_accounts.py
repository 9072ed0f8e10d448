"""MQTT accounts of the embedded broker, with Mosquitto's password hashes (``mosquitto_passwd``): the devices'
passwords from provisioning (the ``device`` table: ``mqtt_username``, ``mqtt_password_hash``, active only),
a Mosquitto password file, and the ingest service's account. The first source that knows a username decides;
no source knowing it, or no username at all, means refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$


def hash_password(password: str, salt: bytes | None = None) -> str:
    """PBKDF2-SHA512 in Mosquitto's ``mosquitto_passwd`` format: ``$7$iterations$salt$hash``."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a Mosquitto hash: ``$7$`` (PBKDF2-SHA512) or ``$6$`` (salted SHA-512).
    Anything else, or a malformed hash, never matches."""
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations = int(parts[2])
            if not 1 <= iterations <= 1_000_000:
                return False
            salt, want = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
        elif len(parts) == 4 and parts[1] == "6":
            salt, want = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
            got = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, want)


class AccountSource(Protocol):
    def password_hash(self, username: str) -> str | None:
        """The stored hash of ``username``, or None if this source does not know it."""


class Accounts:
    """Several sources, asked in order; ``check`` is what the broker calls on CONNECT."""

    def __init__(self, sources: Sequence[AccountSource]) -> None:
        self._sources = list(sources)

    def check(self, username: str | None, password: str | None) -> bool:
        if not username:
            return False  # anonymous clients are refused
        for source in self._sources:
            stored = source.password_hash(username)
            if stored is not None:
                return password is not None and verify_password(password, stored)
        return False


class ServiceAccount:
    """One account held in memory, e.g. the ingest's (``ingest-svc``) with the server's configured or
    generated password."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._hash = hash_password(password)

    def password_hash(self, username: str) -> str | None:
        return self._hash if username == self.username else None


class DeviceAccounts:
    """The devices registered by provisioning, read from the server database at each connect (so a device
    added or disabled takes effect at its next connect)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def password_hash(self, username: str) -> str | None:
        from server.db.devices import Device

        with self._sessions() as session:
            found = session.scalar(
                select(Device.mqtt_password_hash).where(
                    Device.mqtt_username == username, Device.active.is_(True)
                )
            )
        return found or None


class PasswordFile:
    """A Mosquitto password file (``user:hash`` lines), read again whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()

    def password_hash(self, username: str) -> str | None:
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError:
                return None
            if (stat.st_mtime_ns, stat.st_size) != self._seen:
                self._users = parse_password_file(self.path.read_text(encoding="utf-8"))
                self._seen = (stat.st_mtime_ns, stat.st_size)
            return self._users.get(username)


def parse_password_file(text: str) -> dict[str, str]:
    """``user:hash`` per line (blank lines and ``#`` comments skipped; a later line for a user wins)."""
    users = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            user, _, stored = line.partition(":")
            users[user] = stored
    return users
