"""ZVT serial framing: ``DLE STX | APDU with DLE doubled | DLE ETX | CRC-lo CRC-hi`` and an incremental decoder.

The decoder accepts any chunking (one byte at a time or many frames at once) and reports, in order, good
frames, bad frames (with the reason) and single control bytes (ACK/NAK) seen between frames. Garbage before
``DLE STX`` is counted and skipped. The CRC bytes are raw: after ``DLE ETX`` exactly two bytes are read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hardware.zvt.crc import frame_crc

DLE = 0x10
STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15

MAX_APDU = 3 + 2 + 0xFFFF  # CLASS INSTR FF lo hi + 65535 data bytes


def encode_frame(apdu: bytes) -> bytes:
    """Frame one APDU for the serial line."""
    if not apdu:
        raise ValueError("cannot frame an empty APDU")
    if len(apdu) > MAX_APDU:
        raise ValueError(f"APDU of {len(apdu)} bytes is longer than the {MAX_APDU}-byte maximum")
    return b"\x10\x02" + apdu.replace(b"\x10", b"\x10\x10") + b"\x10\x03" + frame_crc(apdu)


@dataclass(frozen=True, slots=True)
class Frame:
    """A well-formed frame with a good CRC."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that started with DLE STX but is broken; the receiver answers NAK."""

    reason: str


@dataclass(frozen=True, slots=True)
class Control:
    """A single unframed ACK (06) or NAK (15) byte between frames."""

    byte: int


DecoderEvent = Frame | BadFrame | Control


class _State(enum.Enum):
    IDLE = 0
    IDLE_DLE = 1
    DATA = 2
    DATA_DLE = 3
    CRC_LO = 4
    CRC_HI = 5


class FrameDecoder:
    """Incremental decoder: ``feed`` any bytes, get back the events they complete."""

    def __init__(self, max_apdu: int = MAX_APDU) -> None:
        self._max = max_apdu
        self._state = _State.IDLE
        self._buf = bytearray()
        self._crc_lo = 0
        self.garbage_bytes = 0

    @property
    def in_frame(self) -> bool:
        """True between DLE STX and the second CRC byte (the link's T1 inter-byte timer runs here)."""
        return self._state in (_State.DATA, _State.DATA_DLE, _State.CRC_LO, _State.CRC_HI)

    def abort(self) -> BadFrame | None:
        """Drop a partial frame (T1 expired); returns the BadFrame if one was in progress."""
        was = self.in_frame
        self._state = _State.IDLE
        self._buf.clear()
        return BadFrame("inter-byte timeout T1 inside a frame") if was else None

    def feed(self, data: bytes) -> list[DecoderEvent]:
        events: list[DecoderEvent] = []
        state = self._state
        buf = self._buf
        for byte in data:
            if state is _State.DATA:
                if byte == DLE:
                    state = _State.DATA_DLE
                else:
                    buf.append(byte)
                    if len(buf) > self._max:
                        events.append(BadFrame(f"frame longer than {self._max} bytes"))
                        buf.clear()
                        state = _State.IDLE
            elif state is _State.DATA_DLE:
                if byte == DLE:
                    buf.append(DLE)
                    state = _State.DATA
                elif byte == ETX:
                    state = _State.CRC_LO
                elif byte == STX:
                    events.append(BadFrame("DLE STX inside a frame; restarting"))
                    buf.clear()
                    state = _State.DATA
                else:
                    events.append(BadFrame(f"DLE followed by 0x{byte:02X} inside a frame"))
                    buf.clear()
                    state = _State.IDLE
            elif state is _State.CRC_LO:
                self._crc_lo = byte
                state = _State.CRC_HI
            elif state is _State.CRC_HI:
                apdu = bytes(buf)
                buf.clear()
                state = _State.IDLE
                expected = frame_crc(apdu) if apdu else b""
                if not apdu:
                    events.append(BadFrame("empty frame"))
                elif expected != bytes((self._crc_lo, byte)):
                    got = bytes((self._crc_lo, byte)).hex(" ").upper()
                    events.append(BadFrame(f"bad CRC {got}, expected {expected.hex(' ').upper()}"))
                else:
                    events.append(Frame(apdu))
            elif state is _State.IDLE:
                if byte == DLE:
                    state = _State.IDLE_DLE
                elif byte in (ACK, NAK):
                    events.append(Control(byte))
                else:
                    self.garbage_bytes += 1
            else:  # IDLE_DLE
                if byte == STX:
                    buf.clear()
                    state = _State.DATA
                elif byte == DLE:
                    self.garbage_bytes += 1
                else:
                    self.garbage_bytes += 2
                    state = _State.IDLE
        self._state = state
        return events
