"""``PrinterCheck`` on an ESC/POS printer reachable over TCP (``tcp://host:9100``): DLE EOT real-time status.

Asks ``10 04 01`` (printer status) and ``10 04 04`` (paper roll sensor). No answer or no connection means
BLOCKED (money is never taken when receipts cannot be printed); paper near end is a WARNING.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from edge.payment.ports import PrinterReadiness, Readiness


class EscPosTcpReadiness:
    def __init__(self, url: str, timeout: float = 2.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("tcp", "socket") or not parsed.hostname:
            raise ValueError(f"printer readiness needs tcp://host:port, got {url!r}")
        self.host = parsed.hostname
        self.port = parsed.port or 9100
        self.timeout = timeout

    def _ask(self, sock: socket.socket, n: int) -> int | None:
        sock.sendall(bytes((0x10, 0x04, n)))
        try:
            data = sock.recv(1)
        except TimeoutError:
            return None
        return data[0] if data else None

    def check(self) -> PrinterReadiness:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.settimeout(self.timeout)
                status = self._ask(sock, 1)
                paper = self._ask(sock, 4)
        except OSError as exc:
            return PrinterReadiness(
                Readiness.BLOCKED, f"printer unreachable at {self.host}:{self.port}: {exc}"
            )
        if status is None or paper is None:
            return PrinterReadiness(Readiness.BLOCKED, "printer gives no status answer")
        if status & 0x08:
            return PrinterReadiness(Readiness.BLOCKED, "printer offline")
        if paper & 0x60:
            return PrinterReadiness(Readiness.BLOCKED, "paper out")
        if paper & 0x0C:
            return PrinterReadiness(Readiness.WARNING, "paper near end")
        return PrinterReadiness(Readiness.READY)
