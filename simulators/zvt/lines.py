"""Where the simulated terminal is plugged in: a pseudo-terminal (with a stable symlink, like udev's by-id
names) or a TCP listener; plus a pacer that makes a line as slow as a real 9600-baud 8N2 cable.

Each line hands out a ``ByteChannel`` for the terminal side; a channel raises ``ChannelError`` when the ECR
end goes away (pty closed: EIO; TCP: connection closed), and ``vanish``/``restore`` unplug and replug it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import select
import socket
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from hardware.zvt.errors import ChannelError
from hardware.zvt.link import ByteChannel


class FdChannel:
    """ByteChannel on a pty master file descriptor; ``alive`` says whether that pty is still plugged in
    (a closed fd number is soon reused by the next pty, which must not be taken for the old one)."""

    def __init__(self, fd: int, alive: Callable[[], bool] = lambda: True) -> None:
        self.fd = fd
        self.alive = alive

    def _check(self) -> None:
        if not self.alive():
            raise ChannelError("pty was unplugged")

    def write(self, data: bytes) -> None:
        self._check()
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError as exc:
            raise ChannelError(f"pty write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        self._check()
        try:
            ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
            self._check()
            if not ready:
                return b""
            data = os.read(self.fd, 4096)
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise ChannelError("ECR side of the pty is closed") from exc
            raise ChannelError(f"pty read failed: {exc}") from exc
        if not data:
            raise ChannelError("pty closed")
        return data


class PtyLine:
    """The terminal end of a pty; the ECR opens ``path`` (a symlink that follows the pty across replugs)."""

    def __init__(self, link_path: Path | None = None) -> None:
        self.link_path = link_path
        self._fd: int | None = None
        self._plugged = 0  # counts replugs: a channel belongs to one of them
        self.device = ""
        self._lock = threading.Lock()
        self.restore()

    @property
    def path(self) -> str:
        return str(self.link_path) if self.link_path else self.device

    def restore(self) -> None:
        with self._lock:
            if self._fd is not None:
                return
            master, slave = pty.openpty()
            tty.setraw(slave)
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            self.device = os.ttyname(slave)
            os.close(slave)
            self._fd = master
            self._plugged += 1
            if self.link_path is not None:
                tmp = self.link_path.with_name(self.link_path.name + ".new")
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(self.device)
                tmp.replace(self.link_path)

    def vanish(self) -> None:
        """Unplug: the pty disappears (the ECR's next read fails) and the symlink goes away."""
        with self._lock:
            fd, self._fd = self._fd, None
            if self.link_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link_path.unlink()
            if fd is not None:
                os.close(fd)

    def channel(self) -> ByteChannel | None:
        with self._lock:
            if self._fd is None:
                return None
            plugged = self._plugged
            return FdChannel(self._fd, lambda: self._fd is not None and self._plugged == plugged)

    def discard_output(self) -> None:
        """Drop what the terminal wrote for a peer that went away (never what a new peer already sent)."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError, termios.error):
                    termios.tcflush(self._fd, termios.TCOFLUSH)

    def close(self) -> None:
        self.vanish()


class SocketChannel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ChannelError(f"TCP write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
            if not ready:
                return b""
            data = self.sock.recv(4096)
        except OSError as exc:
            raise ChannelError(f"TCP read failed: {exc}") from exc
        if not data:
            raise ChannelError("ECR closed the TCP connection")
        return data


class TcpLine:
    """A TCP listener (serial-over-TCP bridge semantics: the same DLE framing as the serial line)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.1)
        self.host, self.port = self._server.getsockname()[:2]
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def channel(self) -> ByteChannel | None:
        with self._lock:
            if self._conn is None:
                try:
                    conn, _ = self._server.accept()
                except (TimeoutError, OSError):
                    return None
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._conn = conn
            return SocketChannel(self._conn)

    def discard_output(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def vanish(self) -> None:
        self.discard_output()

    def restore(self) -> None:
        return None

    def close(self) -> None:
        self.discard_output()
        self._server.close()


class PacedChannel:
    """Makes a channel as slow as a real line: ``bits`` per byte at ``baud`` in each direction (real time)."""

    def __init__(self, inner: ByteChannel, baud: int, bits: int = 11) -> None:
        self.inner = inner
        self.byte_time = bits / baud
        self._tx_free = 0.0
        self._rx_free = 0.0

    @staticmethod
    def _sleep_until(t: float) -> None:
        while True:
            left = t - time.monotonic()
            if left <= 0:
                return
            time.sleep(left)

    def write(self, data: bytes) -> None:
        self._tx_free = max(time.monotonic(), self._tx_free) + len(data) * self.byte_time
        self._sleep_until(self._tx_free)
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        data = self.inner.read(timeout)
        if data:
            self._rx_free = max(time.monotonic(), self._rx_free) + len(data) * self.byte_time
            self._sleep_until(self._rx_free)
        return data
