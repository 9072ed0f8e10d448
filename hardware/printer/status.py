"""DLE EOT real-time status and GS ( H print-completion replies: requests, parsing, and the reply stream."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DLE_EOT = b"\x10\x04"
QUERY_PRINTER = DLE_EOT + b"\x01"
QUERY_OFFLINE_CAUSE = DLE_EOT + b"\x02"
QUERY_ERROR_CAUSE = DLE_EOT + b"\x03"
QUERY_PAPER = DLE_EOT + b"\x04"

CONFIRM_PREFIX = b"\x37\x22"  # GS ( H fn 48 reply: 37 22 d1 d2 d3 d4 00
CONFIRM_LEN = 7


class PaperState(enum.StrEnum):
    OK = "ok"
    NEAR_END = "near_end"
    END = "end"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What DLE EOT said; None (or UNKNOWN) where the printer did not answer. No answer never means "no paper"."""

    online: bool | None
    cover_open: bool | None
    paper: PaperState
    error: bool | None

    @property
    def answered(self) -> bool:
        return self.online is not None or self.paper is not PaperState.UNKNOWN

    def blocking_reason(self) -> str | None:
        """Why nothing can be printed now (paper end, cover open, offline, error), or None."""
        if self.paper is PaperState.END:
            return "paper end"
        if self.cover_open:
            return "cover open"
        if self.error:
            return "printer error"
        if self.online is False:
            return "offline"
        return None

    def warning(self) -> str | None:
        """Something the officer should know although printing may work (near end, no status reply)."""
        if self.paper is PaperState.NEAR_END:
            return "paper near end"
        if not self.answered:
            return "printer status unknown (no reply)"
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "online": self.online,
            "cover_open": self.cover_open,
            "paper": self.paper.value,
            "error": self.error,
        }


UNKNOWN_STATUS = PrinterStatus(None, None, PaperState.UNKNOWN, None)


def is_status_byte(b: int) -> bool:
    """DLE EOT replies have the fixed pattern 0xx1xx10."""
    return (b & 0x93) == 0x12


def paper_from_byte(b: int) -> PaperState:
    if b & 0x60 == 0x60:
        return PaperState.END
    if b & 0x0C == 0x0C:
        return PaperState.NEAR_END
    return PaperState.OK


def status_from_bytes(printer: int | None, offline: int | None, paper: int | None) -> PrinterStatus:
    """Combine the replies to DLE EOT 1, 2 and 4 (None = that query got no reply)."""
    online = None if printer is None else not printer & 0x08
    cover = None if offline is None else bool(offline & 0x04)
    error = None if offline is None else bool(offline & 0x40)
    state = PaperState.UNKNOWN if paper is None else paper_from_byte(paper)
    if state is PaperState.UNKNOWN and offline is not None and offline & 0x20:
        state = PaperState.END
    return PrinterStatus(online, cover, state, error)


def confirmation_request(marker: bytes) -> bytes:
    """GS ( H fn 48 with a 4-byte id (each 0x20..0x7E): the printer answers once everything before it printed."""
    if len(marker) != 4 or not all(0x20 <= b <= 0x7E for b in marker):
        raise ValueError("a GS ( H marker is 4 printable ASCII bytes")
    return b"\x1d\x28\x48\x06\x00\x30\x30" + marker


def confirmation_reply(marker: bytes) -> bytes:
    return CONFIRM_PREFIX + marker + b"\x00"


@dataclass
class ReplyStream:
    """Splits bytes coming back from the printer into status bytes and GS ( H confirmations."""

    status_bytes: list[int] = field(default_factory=list)
    confirmed: set[bytes] = field(default_factory=set)
    junk: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._buf:
            b = self._buf[0]
            if b == CONFIRM_PREFIX[0] and (len(self._buf) < 2 or self._buf[1] == CONFIRM_PREFIX[1]):
                if len(self._buf) < CONFIRM_LEN:
                    return
                if self._buf[CONFIRM_LEN - 1] == 0:
                    self.confirmed.add(bytes(self._buf[2:6]))
                    del self._buf[:CONFIRM_LEN]
                    continue
            if is_status_byte(b):
                self.status_bytes.append(b)
            else:
                self.junk += 1
            del self._buf[0]

    def take_status(self) -> int | None:
        return self.status_bytes.pop(0) if self.status_bytes else None
