"""ZVT frame checksum: reflected CCITT CRC-16 (poly 0x8408, init 0, no final XOR, aka CRC-16/KERMIT).

The CRC covers the unstuffed APDU plus the ETX byte (03) and is sent low byte first (zvt.md §4).
"""

from __future__ import annotations

ETX = 0x03


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_kermit(data: bytes, crc: int = 0) -> int:
    """CRC-16/KERMIT of ``data`` continuing from ``crc``; ``crc16_kermit(b"123456789") == 0x2189``."""
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def frame_crc(apdu: bytes) -> bytes:
    """The two CRC bytes (low, high) that follow ``DLE ETX`` in a frame carrying ``apdu``."""
    crc = crc16_kermit(bytes((ETX,)), crc16_kermit(apdu))
    return bytes((crc & 0xFF, crc >> 8))
