"""Byte channel over pyserial's ``serial_for_url``: one code path for ``/dev/ttyUSB0``, a pty and ``socket://``.

Defaults are the ZVT line settings, 9600 baud 8N2. A vanished port (unplugged USB adapter, closed pty) raises
``ChannelError``; ``reopen`` opens the same URL again, which follows a stable symlink to a renamed device.
"""

from __future__ import annotations

import contextlib
import termios
from dataclasses import dataclass

import serial

from hardware.zvt.errors import ChannelError


@dataclass(frozen=True, slots=True)
class LineSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 2


class SerialChannel:
    """``ByteChannel`` on a pyserial port opened from a URL or device path."""

    def __init__(self, url: str, settings: LineSettings | None = None) -> None:
        self.url = url
        self.settings = settings or LineSettings()
        self._port: serial.SerialBase | None = None
        self._timeout = 0.0
        self.open()

    def open(self) -> None:
        s = self.settings
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=0,
                write_timeout=5,
            )
            self._timeout = 0.0
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            raise ChannelError(f"cannot open terminal line {self.url}: {exc}") from exc

    def reopen(self) -> None:
        self.close()
        self.open()

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise ChannelError(f"terminal line {self.url} is closed")
        return self._port

    def write(self, data: bytes) -> None:
        port = self._require()
        try:
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError, termios.error) as exc:  # termios.error is no OSError
            self.close()
            raise ChannelError(f"terminal line {self.url} lost while writing: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        port = self._require()
        try:
            wanted = round(max(timeout, 0.0), 2)
            if wanted != self._timeout:
                port.timeout = wanted
                self._timeout = wanted
            first = port.read(1)
            if not first:
                return b""
            waiting = int(getattr(port, "in_waiting", 0))
            return first + (port.read(waiting) if waiting else b"")
        except (serial.SerialException, OSError, termios.error) as exc:  # termios.error is no OSError
            self.close()
            raise ChannelError(f"terminal line {self.url} lost while reading: {exc}") from exc
