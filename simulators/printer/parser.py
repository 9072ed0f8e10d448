"""Streaming ESC/POS parser: bytes in any chunks -> text runs, commands with their parameters, unknown commands."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.printer.commands import INTRODUCERS, TRIE, CommandSpec, Params

MAX_PAYLOAD = 4 * 1024 * 1024  # a raster image of 576 x 58 000 dots; anything claiming more is refused


class ParseError(ValueError):
    """The stream cannot be parsed (strict mode: unknown command; always: absurd lengths)."""


@dataclass(frozen=True, slots=True)
class TextRun:
    data: bytes  # printable bytes and LF, undecoded (the code page decides)


@dataclass(frozen=True, slots=True)
class Command:
    spec: CommandSpec
    args: bytes  # every byte after the prefix

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class Unknown:
    data: bytes  # the introducer and the next byte, skipped


Event = TextRun | Command | Unknown


def _needed(spec: CommandSpec, args: bytes) -> int | None:
    """How many argument bytes ``spec`` takes given the first ones, or None when more bytes must come first."""
    p = spec.params
    if p is Params.FIXED:
        return spec.count
    if p is Params.LEN16:
        return None if len(args) < 2 else 2 + args[0] + 256 * args[1]
    if p is Params.RASTER:
        if len(args) < 5:
            return None
        return 5 + (args[1] + 256 * args[2]) * (args[3] + 256 * args[4])
    if p is Params.COLUMN:
        if len(args) < 3:
            return None
        return 3 + (args[1] + 256 * args[2]) * (3 if args[0] in (32, 33) else 1)
    if p is Params.CUT:
        if not args:
            return None
        return 2 if args[0] in (65, 66, 97, 98, 103, 104) else 1
    if p is Params.BARCODE:
        if not args:
            return None
        if args[0] <= 6:
            end = args.find(b"\x00", 1)
            return None if end < 0 else end + 1
        return None if len(args) < 2 else 2 + args[1]
    if p is Params.DC4:
        if not args:
            return None
        return 7 if args[0] == 8 else 3
    raise AssertionError(p)


class EscPosParser:
    """Feed bytes, get events. Keeps partial commands across calls (TCP and serial split anywhere)."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._buf = bytearray()
        self.unknown: list[bytes] = []

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        buf = self._buf
        i = 0
        text_start = 0
        n = len(buf)
        while i < n:
            b = buf[i]
            if b not in INTRODUCERS:
                i += 1
                continue
            if i > text_start:
                events.append(TextRun(bytes(buf[text_start:i])))
            node: object = TRIE
            j = i
            while isinstance(node, dict) and j < n:
                node = node.get(buf[j])
                j += 1
            if node is None:
                bad = bytes(buf[i : min(i + 2, n)])
                if self.strict:
                    raise ParseError(f"unknown ESC/POS command {bad.hex(' ')} at offset {i}")
                self.unknown.append(bad)
                events.append(Unknown(bad))
                i += len(bad)
                text_start = i
                continue
            if isinstance(node, dict):  # prefix not complete yet
                text_start = i
                break
            assert isinstance(node, CommandSpec)
            need = _needed(
                node, bytes(buf[j : min(n, j + 8)]) if node.params is not Params.BARCODE else bytes(buf[j:n])
            )
            if need is not None and need > MAX_PAYLOAD:
                raise ParseError(f"{node.name}: claims {need} bytes (> {MAX_PAYLOAD})")
            if need is None or j + need > n:
                text_start = i
                break
            events.append(Command(node, bytes(buf[j : j + need])))
            i = j + need
            text_start = i
        else:
            if n > text_start:
                events.append(TextRun(bytes(buf[text_start:n])))
            text_start = n
        del buf[:text_start]
        return events
