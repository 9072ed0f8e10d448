"""ZVT result codes (BMP 27, 06 1E, 84 xx) and terminal status bytes (05 01) in words (P015 §10, §11).

Codes 01–63 are the network operator's or host's own codes: they reach the ECR opaque (zvt.md §11 on the
hex/decimal ambiguity), so they read as a decline by the card issuer with the code shown.
"""

from __future__ import annotations

RESULT_TEXT: dict[int, str] = {
    0x00: "approved",
    0x64: "card not readable",
    0x65: "no card data",
    0x66: "processing error",
    0x6B: "terminal not registered",
    0x6C: "no card presented or aborted (timeout or abort key)",
    0x6F: "terminal does not accept this currency",
    0x71: "credit not sufficient",
    0x72: "chip error",
    0x78: "card expired",
    0x79: "card not yet valid",
    0x7A: "card unknown",
    0x7D: "communication error",
    0x83: "function not possible",
    0x9A: "ZVT protocol error",
    0x9C: "terminal busy, try again",
    0xA0: "receiver not ready",
    0xA1: "remote station not responding",
    0xA3: "no connection",
    0xA5: "not allowed (PCI)",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
    0xC3: "maximum amount exceeded",
    0xC8: "amount too small",
    0xCC: "printer not ready",
    0xDC: "card inserted",
    0xE2: "card reader defective",
    0xEC: "PIN processing not possible",
    0xED: "PIN pad defective",
    0xFF: "system error",
}

TERMINAL_STATUS_TEXT: dict[int, str] = {
    0x00: "ready",
    0x51: "initialisation required",
    0x62: "date/time wrong",
    0x9C: "busy (please wait)",
    0xC2: "diagnosis required",
    0xCC: "printer not ready",
    0xDC: "card inserted",
    0xDF: "out of order",
    0xE1: "card not fully removed",
    0xE2: "card reader defective",
    0xF0: "end-of-day required",
}


def result_text(code: int) -> str:
    """The result code in words; host codes 01–63 are a decline by the card issuer."""
    if 0x01 <= code <= 0x63:
        return "declined by the card issuer"
    return RESULT_TEXT.get(code, "terminal error")


def terminal_status_text(code: int) -> str:
    return TERMINAL_STATUS_TEXT.get(code, f"status 0x{code:02X}")
