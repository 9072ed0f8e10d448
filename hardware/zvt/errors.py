"""Exceptions of the ZVT driver, one per layer, so callers can tell a dead line from a refusal."""

from __future__ import annotations


class ZvtError(Exception):
    """Base of every ZVT driver error."""


class ChannelError(ZvtError):
    """The byte channel failed: port vanished, unplugged cable, device reports readiness but no data."""


class LinkError(ZvtError):
    """Transmission error: a frame was not acknowledged after 3 sends, or 3 bad frames arrived in a row."""


class ResponseTimeout(ZvtError):
    """No frame arrived within the application timer (T3 or T4)."""


class ApduError(ZvtError):
    """A malformed APDU, BMP or TLV: the message names what was wrong."""


class CommandRejected(ZvtError):
    """The terminal answered a command with ``84 xx``; ``code`` is the result code xx."""

    def __init__(self, command: str, code: int, detail: str = "") -> None:
        self.command = command
        self.code = code
        super().__init__(f"{command} rejected by the terminal with result code 0x{code:02X} {detail}".strip())
