"""The SMS gateway interface, and two of its gateways: the log gateway (the embedded default: writes what it
would send, one JSON line per SMS, fsynced) and an HTTP gateway. SMPP is in ``smpp_gateway``.

A gateway takes a few messages at a time (``batch_size``), says whether delivery receipts come back
(``receipts``: then each part's provider id is kept to match them), and says of each message:

- ``ACCEPTED`` with the provider's id of every part: it was taken;
- ``REFUSED``: it was certainly not taken (connection refused, the provider said no): try again later;
- ``CUT_OFF``: the send was cut off after it may have reached the provider (timeout, connection lost). The
  notifier never repeats such a send unless the gateway is ``idempotent`` (it drops a repeated ``reference``).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx


class SendOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    CUT_OFF = "cut_off"


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    reference: str  # ours, unique per notification ("n<id>")
    phone: str
    text: str


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    provider_ids: tuple[str, ...] = ()
    error: str = ""


class SmsGateway(Protocol):
    idempotent: bool  # a repeated reference is dropped by the provider: a cut-off send may be retried
    batch_size: int  # how many messages are claimed and sent at a time
    receipts: bool  # delivery receipts come back (then each part's provider id is kept to match them)

    def send(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        """One result per message, in order."""
        ...

    def close(self) -> None: ...


class LogGateway:
    """Writes each SMS as a JSON line to ``path`` (fsynced per batch) instead of sending it."""

    idempotent = True
    batch_size = 5000  # a local file: a big batch costs fewer commits
    receipts = False

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        lines = "".join(
            json.dumps(
                {"at": at, "to": m.phone, "reference": m.reference, "text": m.text}, ensure_ascii=False
            )
            + "\n"
            for m in messages
        )
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            return [SendResult(SendOutcome.REFUSED, (), f"log file: {exc}") for _ in messages]
        return [SendResult(SendOutcome.ACCEPTED, (f"log:{m.reference}",)) for m in messages]

    def close(self) -> None:
        pass


class HttpGateway:
    """``POST url`` with ``{"to", "text", "reference"}`` (Bearer token); the answer's ``id`` is the provider id.

    2xx = accepted; 4xx but 408/429 = refused; 408, 429, 5xx = refused (retried); no answer after the request
    was written (timeout, dropped connection) = cut off; a connection never made = refused.
    """

    batch_size = 1
    receipts = False  # no receipt callback is implemented for it

    def __init__(self, url: str, token: str | None, idempotent: bool, timeout_s: float) -> None:
        self.url, self.idempotent = url, idempotent
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    def send(self, messages: Sequence[OutgoingSms]) -> list[SendResult]:
        return [self._one(m) for m in messages]

    def _one(self, m: OutgoingSms) -> SendResult:
        try:
            r = self._client.post(self.url, json={"to": m.phone, "text": m.text, "reference": m.reference})
        except httpx.ConnectError as exc:
            return SendResult(SendOutcome.REFUSED, (), f"connect: {exc}")
        except httpx.HTTPError as exc:
            return SendResult(SendOutcome.CUT_OFF, (), f"{type(exc).__name__}: {exc}")
        if 200 <= r.status_code < 300:
            try:
                provider_id = str(r.json()["id"])[:128]
            except (ValueError, KeyError, TypeError):
                return SendResult(SendOutcome.CUT_OFF, (), f"HTTP {r.status_code} without an id")
            return SendResult(SendOutcome.ACCEPTED, (provider_id,))
        return SendResult(SendOutcome.REFUSED, (), f"HTTP {r.status_code}: {r.text[:200]}")

    def close(self) -> None:
        self._client.close()
