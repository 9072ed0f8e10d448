"""Serves a VirtualPrinter on TCP (port 9100 by default) and on a pseudo-terminal, like a real printer's ports."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import tty

from core.structured_log import log_event
from simulators.printer.virtual_printer import VirtualPrinter

log = logging.getLogger(__name__)


class TcpPrinterServer:
    """Accepts connections on ``host:port`` and feeds each one's bytes to the printer (port 0 = pick one)."""

    def __init__(self, printer: VirtualPrinter, host: str = "127.0.0.1", port: int = 9100) -> None:
        self.printer = printer
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._accept = threading.Thread(target=self._serve, name="printer-sim-tcp", daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def start(self) -> TcpPrinterServer:
        self._accept.start()
        log_event(log, "printer_sim.listening", url=self.url)
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.add(conn)
            t = threading.Thread(target=self._client, args=(conn, peer), daemon=True)
            self._threads.append(t)
            t.start()

    def _client(self, conn: socket.socket, peer: object) -> None:
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                reply = self.printer.feed(data)
                if reply:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        break
        self._conns.discard(conn)

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._accept.join(2)
        for t in self._threads:
            t.join(2)


class PtyPrinterServer:
    """A pseudo-terminal whose slave path (``device``) the driver opens like a serial port."""

    def __init__(self, printer: VirtualPrinter) -> None:
        self.printer = printer
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.device = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="printer-sim-pty", daemon=True)

    @property
    def url(self) -> str:
        return f"serial://{self.device}?baudrate=115200"

    def start(self) -> PtyPrinterServer:
        self._thread.start()
        log_event(log, "printer_sim.listening", url=self.url)
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                continue
            reply = self.printer.feed(data)
            if reply:
                os.write(self._master, reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
