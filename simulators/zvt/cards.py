"""Card profiles the simulated terminal can be presented with: what a Read Card and a payment report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CardProfile:
    """One card: masked PAN (E = masked digit), ZVT card type, product name, expiry YYMM, 1F14 hash, track-1 name."""

    key: str
    masked_pan: str
    card_type: int
    product_name: str
    expiry: str  # YYMM
    card_hash: bytes
    holder_name: str | None = None  # track-1 "SURNAME/GIVEN"; None on chip/contactless reads
    pin: str = "1234"
    needs_pin: bool = True

    @property
    def last4(self) -> str:
        return self.masked_pan[-4:]

    def track1(self) -> str | None:
        """Track 1 without sentinels as BMP 2D carries it: ``B PAN ^ NAME ^ YYMM ...`` (masked)."""
        if self.holder_name is None:
            return None
        return f"B{self.masked_pan}^{self.holder_name}^{self.expiry}101"


def _hash(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()[:16]


CARDS: dict[str, CardProfile] = {
    c.key: c
    for c in (
        CardProfile(
            "visa_named",
            "4EEEEEEEEEEE1014",
            0x0A,
            "Visa Debit",
            "2812",
            _hash("visa_named"),
            "ZHANBOLATOV/ARMAN",
        ),
        CardProfile("mc_chip", "5EEEEEEEEEEE4771", 0x06, "Debit Mastercard", "2705", _hash("mc_chip"), None),
        CardProfile(
            "visa_other", "4EEEEEEEEEEE9921", 0x0A, "Visa Classic", "2901", _hash("visa_other"), "PETROV/IVAN"
        ),
        CardProfile(
            "girocard",
            "6725EEEEEEEEE1000",
            0x05,
            "girocard",
            "2412",
            bytes.fromhex("3f56a32065cc4dbe8330c37609f91996"),
            None,
        ),
        CardProfile("expired", "4EEEEEEEEEEE0005", 0x0A, "Visa Debit", "2001", _hash("expired"), "OLD/CARD"),
    )
}


def card(key: str) -> CardProfile:
    try:
        return CARDS[key]
    except KeyError:
        raise ValueError(f"unknown card profile {key!r}; known: {', '.join(sorted(CARDS))}") from None
