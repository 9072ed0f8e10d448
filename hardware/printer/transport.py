"""Opens a python-escpos printer from a URL (tcp://, serial://, a device path, usb://, file://) that can read replies.

python-escpos' own ``_read`` blocks for 16 bytes (serial) or 60 s (network); status replies are one byte,
so the classes here return as soon as something arrived and return b"" when nothing did (= unknown).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from escpos.escpos import Escpos
from escpos.printer import File, Network, Serial


class PrinterUrlError(ValueError):
    """The printer URL cannot be understood; the message says which forms are accepted."""


_FORMS = (
    "tcp://host:9100, serial:///dev/ttyUSB0?baudrate=115200, /dev/ttyS0, usb://04b8:0e15, file:///dev/usb/lp0"
)


class NetworkPrinter(Network):
    """TCP 9100 with separate write and read timeouts."""

    def __init__(self, host: str, port: int, read_timeout: float, write_timeout: float, **kw: Any) -> None:
        super().__init__(host=host, port=port, timeout=write_timeout, **kw)
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout

    def _raw(self, msg: bytes) -> None:
        assert self.device
        self.device.settimeout(self.write_timeout)
        self.device.sendall(msg)

    def _read(self) -> bytes:
        assert self.device
        self.device.settimeout(self.read_timeout)
        try:
            data: bytes = self.device.recv(64)
        except TimeoutError:
            return b""
        if not data:
            raise ConnectionResetError("printer closed the connection")
        return data


class SerialPrinter(Serial):
    """Serial/pty/Bluetooth SPP: returns after the first byte instead of waiting for 16."""

    def _read(self) -> bytes:
        assert self.device
        first: bytes = self.device.read(1)
        if not first:
            return b""
        more = self.device.in_waiting
        return first + (self.device.read(more) if more else b"")


class WriteOnlyFile(File):
    """A character device we can only write to (lp0, rfcomm without reads): status is always unknown."""

    def _read(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class PrinterEndpoint:
    kind: str  # tcp | serial | usb | file
    target: str
    port: int = 9100
    baudrate: int = 9600
    dsrdtr: bool = False
    usb_ids: tuple[int, int] = (0, 0)


def parse_printer_url(url: str) -> PrinterEndpoint:
    """Understand the configured printer URL; anything else raises PrinterUrlError listing the accepted forms."""
    if url.startswith("/"):
        return PrinterEndpoint("serial", url)
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        if parts.scheme in ("tcp", "socket"):
            if not parts.hostname:
                raise PrinterUrlError(f"no host in printer URL {url!r}; expected {_FORMS}")
            return PrinterEndpoint("tcp", parts.hostname, port=parts.port or 9100)
        if parts.scheme == "serial":
            dev = parts.path or parts.netloc
            if not dev:
                raise PrinterUrlError(f"no device in printer URL {url!r}; expected {_FORMS}")
            return PrinterEndpoint(
                "serial",
                dev,
                baudrate=int(query.get("baudrate", "9600")),
                dsrdtr=query.get("dsrdtr", "0") in ("1", "true", "yes"),
            )
        if parts.scheme == "usb":
            vid, pid = parts.netloc.split(":")
            return PrinterEndpoint("usb", parts.netloc, usb_ids=(int(vid, 16), int(pid, 16)))
        if parts.scheme == "file":
            return PrinterEndpoint("file", parts.path)
    except ValueError as exc:
        if isinstance(exc, PrinterUrlError):
            raise
        raise PrinterUrlError(f"bad printer URL {url!r} ({exc}); expected {_FORMS}") from exc
    raise PrinterUrlError(f"unsupported printer URL {url!r}; expected {_FORMS}")


def open_printer(
    url: str, escpos_profile: str, read_timeout: float = 0.5, write_timeout: float = 30.0
) -> Escpos:
    """An open python-escpos printer for ``url`` (raises escpos DeviceNotFoundError / OSError when unreachable)."""
    ep = parse_printer_url(url)
    printer: Escpos
    if ep.kind == "tcp":
        printer = NetworkPrinter(ep.target, ep.port, read_timeout, write_timeout, profile=escpos_profile)
    elif ep.kind == "serial":
        printer = SerialPrinter(
            devfile=ep.target,
            baudrate=ep.baudrate,
            timeout=read_timeout,
            dsrdtr=ep.dsrdtr,
            profile=escpos_profile,
        )
    elif ep.kind == "usb":
        from escpos.printer import Usb

        printer = Usb(ep.usb_ids[0], ep.usb_ids[1], timeout=int(write_timeout * 1000), profile=escpos_profile)
    else:
        printer = WriteOnlyFile(devfile=ep.target, profile=escpos_profile)
    printer.open()
    if ep.kind == "serial" and printer.device is not None:
        printer.device.write_timeout = write_timeout
    if ep.kind == "tcp" and isinstance(printer.device, socket.socket):
        printer.device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return printer
