"""A receipt as the driver prints it: text lines with style, QR codes and feeds (no ESC/POS, no fines)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Align(enum.StrEnum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


@dataclass(frozen=True, slots=True)
class Text:
    """One logical line; the encoder wraps it to the profile's columns (half as many when ``large``)."""

    text: str
    align: Align = Align.LEFT
    bold: bool = False
    large: bool = False  # double width and double height

    def __post_init__(self) -> None:
        if any(c in self.text for c in "\n\r\t") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.text):
            raise ValueError(f"control characters in a receipt line: {self.text!r}")


@dataclass(frozen=True, slots=True)
class QrCode:
    data: str

    def __post_init__(self) -> None:
        if not self.data or len(self.data.encode("utf-8")) > 700:
            raise ValueError("QR data must be 1..700 bytes")


@dataclass(frozen=True, slots=True)
class Feed:
    lines: int = 1


Block = Text | QrCode | Feed


@dataclass(frozen=True, slots=True)
class Document:
    """One cut receipt."""

    blocks: tuple[Block, ...]


def wrap(text: str, width: int) -> list[str]:
    """Word-wrap to ``width`` characters; words longer than a line are split; an empty text is one empty line."""
    if width < 1:
        raise ValueError("width must be positive")
    words = text.split()
    if not words:
        return [""]
    lines: list[str] = []
    current = ""
    for word in words:
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines
