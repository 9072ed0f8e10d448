"""ZVT APDU envelope: ``CLASS INSTR LEN DATA`` with the extended length ``FF lo hi`` above 254 bytes."""

from __future__ import annotations

from dataclasses import dataclass

from hardware.zvt.errors import ApduError

MAX_DATA = 0xFFFF


@dataclass(frozen=True, slots=True)
class Apdu:
    """One application message: class byte, instruction byte and its data."""

    cls: int
    instr: int
    data: bytes = b""

    @property
    def command(self) -> tuple[int, int]:
        return (self.cls, self.instr)

    @property
    def label(self) -> str:
        return f"{self.cls:02X} {self.instr:02X}"

    def encode(self) -> bytes:
        return encode_apdu(self.cls, self.instr, self.data)


def encode_length(n: int) -> bytes:
    if n < 0 or n > MAX_DATA:
        raise ApduError(f"APDU data length {n} outside 0..{MAX_DATA}")
    if n < 0xFF:
        return bytes((n,))
    return bytes((0xFF, n & 0xFF, n >> 8))


def encode_apdu(cls: int, instr: int, data: bytes = b"") -> bytes:
    if not (0 <= cls <= 0xFF and 0 <= instr <= 0xFF):
        raise ApduError(f"class/instruction must be bytes, got {cls!r} {instr!r}")
    return bytes((cls, instr)) + encode_length(len(data)) + data


def decode_apdu(raw: bytes) -> Apdu:
    """Parse one APDU; the length byte(s) must match the data exactly."""
    if len(raw) < 3:
        raise ApduError(f"APDU too short ({len(raw)} bytes): {raw.hex(' ')}")
    n = raw[2]
    start = 3
    if n == 0xFF:
        if len(raw) < 5:
            raise ApduError("APDU with extended length FF but no 2-byte length")
        n = raw[3] | (raw[4] << 8)
        start = 5
    data = raw[start:]
    if len(data) != n:
        raise ApduError(f"APDU {raw[0]:02X} {raw[1]:02X} says {n} data bytes but carries {len(data)}")
    return Apdu(raw[0], raw[1], bytes(data))
