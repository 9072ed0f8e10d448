"""The ESC/POS printer driver: status by DLE EOT, a print job with GS ( H confirmation, over any python-escpos link."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from escpos.escpos import Escpos
from escpos.exceptions import DeviceNotFoundError

from core.clock import Clock
from core.receipt_document import Document
from core.structured_log import log_event
from hardware.printer.encoder import JobEncoder
from hardware.printer.profiles import PrinterProfile
from hardware.printer.status import (
    QUERY_OFFLINE_CAUSE,
    QUERY_PAPER,
    QUERY_PRINTER,
    PaperState,
    PrinterStatus,
    ReplyStream,
    status_from_bytes,
)
from hardware.printer.transport import open_printer

log = logging.getLogger(__name__)

LINK_DOWN = PrinterStatus(online=False, cover_open=None, paper=PaperState.UNKNOWN, error=None)
Opener = Callable[[str, str], Escpos]


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    """``confirmed``: True = printed (GS ( H reply, or a clean status after the job where GS ( H is unsupported);
    False = not printed (paper end, cover, offline, link lost, no confirmation in time); None = sent, the printer
    cannot tell (write-only link)."""

    confirmed: bool | None
    reason: str
    status: PrinterStatus
    bytes_sent: int


class EscposPrinter:
    """One printer at ``url`` with ``profile``. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        url: str,
        profile: PrinterProfile,
        clock: Clock,
        *,
        read_timeout: float = 0.5,
        confirm_timeout: float = 60.0,
        poll_interval: float = 0.5,
        settle_seconds: float = 3.0,
        opener: Opener | None = None,
    ) -> None:
        self.url = url
        self.profile = profile
        self.clock = clock
        self.read_timeout = read_timeout
        self.confirm_timeout = confirm_timeout
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.encoder = JobEncoder(profile)
        self._opener = opener or (lambda u, p: open_printer(u, p, read_timeout=read_timeout))
        self._link: Escpos | None = None
        self._replies = ReplyStream()
        self._next_marker = secrets.randbelow(10000)

    # -- link -------------------------------------------------------------------------------------------
    def _open(self) -> Escpos:
        if self._link is None:
            self._link = self._opener(self.url, self.profile.escpos_profile)
            self._replies = ReplyStream()
        return self._link

    def close(self) -> None:
        if self._link is not None:
            with contextlib.suppress(OSError):
                self._link.close()
            self._link = None

    def __enter__(self) -> EscposPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, link: Escpos, request: bytes) -> int | None:
        link._raw(request)
        while True:
            got = self._replies.take_status()
            if got is not None:
                return got
            data = link._read()
            if not data:
                return None
            self._replies.feed(data)

    # -- status -----------------------------------------------------------------------------------------
    def status(self) -> PrinterStatus:
        """DLE EOT 1, 2 and 4. A query with no reply leaves its part unknown; an unreachable printer is offline."""
        try:
            link = self._open()
            self._replies.status_bytes.clear()
            printer = self._query(link, QUERY_PRINTER)
            offline = self._query(link, QUERY_OFFLINE_CAUSE)
            paper = self._query(link, QUERY_PAPER)
        except (OSError, DeviceNotFoundError) as exc:
            self.close()
            log_event(log, "printer.unreachable", url=self.url, error=str(exc))
            return LINK_DOWN
        return status_from_bytes(printer, offline, paper)

    # -- printing ---------------------------------------------------------------------------------------
    def _marker(self) -> bytes:
        self._next_marker = (self._next_marker + 1) % 10000
        return f"{self._next_marker:04d}".encode("ascii")

    def encode(self, doc: Document) -> tuple[bytes, bytes | None]:
        marker = self._marker() if self.profile.print_confirmation else None
        return self.encoder.encode(doc, marker), marker

    def print_document(self, doc: Document) -> PrintOutcome:
        """Send one receipt and find out whether it actually printed."""
        job, marker = self.encode(doc)
        try:
            link = self._open()
            link._raw(job)
        except (OSError, DeviceNotFoundError) as exc:
            self.close()
            outcome = PrintOutcome(False, f"link error: {exc}", LINK_DOWN, 0)
            log_event(log, "printer.job_failed", reason=outcome.reason)
            return outcome
        if marker is not None:
            outcome = self._await_confirmation(marker, len(job))
        else:
            self.clock.sleep(self.settle_seconds)
            st = self.status()
            blocked = st.blocking_reason()
            if blocked:
                outcome = PrintOutcome(False, blocked, st, len(job))
            elif not st.answered:
                outcome = PrintOutcome(None, "sent; the printer gives no status", st, len(job))
            else:
                outcome = PrintOutcome(True, "clean status after the job", st, len(job))
        log_event(
            log,
            "printer.job_done",
            confirmed=outcome.confirmed,
            reason=outcome.reason,
            bytes=outcome.bytes_sent,
            status=outcome.status.as_dict(),
        )
        return outcome

    def _await_confirmation(self, marker: bytes, sent: int) -> PrintOutcome:
        deadline = self.clock.monotonic() + self.confirm_timeout
        while True:
            st = self.status()
            if marker in self._replies.confirmed:
                self._replies.confirmed.discard(marker)
                return PrintOutcome(True, "GS ( H confirmation", st, sent)
            blocked = st.blocking_reason()
            if blocked:
                return PrintOutcome(False, blocked, st, sent)
            if self.clock.monotonic() >= deadline:
                return PrintOutcome(
                    False, f"no print confirmation within {self.confirm_timeout:g} s", st, sent
                )
            self.clock.sleep(self.poll_interval)
