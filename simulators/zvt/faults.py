"""Line faults the simulated terminal injects frame by frame, through the link's single fault hook.

Faults wait in a queue and each applies to the next frame that matches its direction (``out`` = a frame the
terminal sends, ``in`` = a frame the terminal receives from the ECR); ``apdu_prefix`` narrows it to one message.
``unplug`` pulls the cable as the frame is sent: the frame is lost and the line is gone until ``replug``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hardware.zvt.errors import ChannelError
from hardware.zvt.framing import ACK, NAK
from hardware.zvt.link import Answer, LinkFaults, WireChunk

OUT_KINDS = {"bad_crc", "t1_gap", "one_byte", "split", "garbage", "duplicate", "crc_dle", "unplug"}
IN_KINDS = {"nak", "no_ack", "late_ack"}
REAL_SETTLE = 0.3  # real seconds that let the peer drain its port before the fake clock jumps


@dataclass
class LineFault:
    kind: str
    count: int = 1  # NAK how many times (nak); frames affected (others)
    delay: float = 0.0  # late_ack: clock seconds; t1_gap: gap length
    apdu_prefix: bytes = b""
    skip: int = 0  # matching frames to let through untouched first (e.g. the Read Card's 04 0F)

    def __post_init__(self) -> None:
        if self.kind not in OUT_KINDS | IN_KINDS:
            raise ValueError(
                f"unknown line fault {self.kind!r}; known: {', '.join(sorted(OUT_KINDS | IN_KINDS))}"
            )

    @property
    def direction(self) -> str:
        return "out" if self.kind in OUT_KINDS else "in"


class LineFaults(LinkFaults):
    """Queue of faults; thread-safe so the control API can add them while the terminal runs."""

    def __init__(self, unplug: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: list[LineFault] = []
        self.applied: list[str] = []
        self._nak_left: dict[bytes, int] = {}
        self.unplug = unplug  # pulls the terminal's cable (the line's ``vanish``)

    def add(self, fault: LineFault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._nak_left.clear()

    def pending(self) -> list[str]:
        with self._lock:
            return [f.kind for f in self._queue]

    def _take(self, direction: str, apdu: bytes) -> LineFault | None:
        with self._lock:
            for i, f in enumerate(self._queue):
                if f.direction == direction and apdu.startswith(f.apdu_prefix):
                    if f.skip > 0:
                        f.skip -= 1
                        return None
                    if f.kind == "nak":
                        self._queue.pop(i)
                    else:
                        f.count -= 1
                        if f.count <= 0:
                            self._queue.pop(i)
                    self.applied.append(f.kind)
                    return f
        return None

    def outgoing(self, apdu: bytes, wire: bytes, attempt: int) -> Sequence[WireChunk]:
        if attempt:
            return (WireChunk(wire),)
        f = self._take("out", apdu)
        if f is None or f.kind == "duplicate":
            if f is not None:
                self._duplicate = apdu
            return (WireChunk(wire),)
        if f.kind == "unplug" and self.unplug is not None:
            self.unplug()
            raise ChannelError(f"cable pulled as {apdu[:2].hex(' ').upper()} was sent")
        if f.kind == "bad_crc":
            return (WireChunk(wire[:-1] + bytes((wire[-1] ^ 0x5A,))),)
        if f.kind == "t1_gap":
            cut = max(3, len(wire) // 2)
            gap = f.delay or 0.25
            return (
                WireChunk(wire[:cut]),
                WireChunk(b"", pause=gap, real_pause=REAL_SETTLE),
                WireChunk(wire[cut:], real_pause=0.01),
            )
        if f.kind == "one_byte":
            return tuple(WireChunk(bytes((b,)), real_pause=0.002) for b in wire)
        if f.kind == "split":
            cut = len(wire) // 3
            return (
                WireChunk(wire[:cut]),
                WireChunk(wire[cut : 2 * cut], real_pause=0.02),
                WireChunk(wire[2 * cut :], real_pause=0.02),
            )
        if f.kind == "garbage":
            return (WireChunk(b"\x00\xff\x41\x10\x10\x42\x0d\x0a" + wire),)
        if f.kind == "crc_dle":
            from hardware.zvt.framing import encode_frame

            # an extra 04 FF whose CRC is 10 2B (sent raw), right before the real frame
            return (WireChunk(encode_frame(bytes.fromhex("04FF0168"))), WireChunk(wire, real_pause=0.05))
        return (WireChunk(wire),)

    _duplicate: bytes | None = None

    def send_twice(self, apdu: bytes) -> bool:
        if self._duplicate is not None and self._duplicate == apdu:
            self._duplicate = None
            self.duplicated_last = True
            return True
        self.duplicated_last = False
        return False

    duplicated_last: bool = False

    def answer(self, apdu: bytes) -> Answer:
        with self._lock:
            left = self._nak_left.get(apdu, 0)
            if left:
                self._nak_left[apdu] = left - 1
                if left - 1 == 0:
                    del self._nak_left[apdu]
                return Answer(NAK)
        f = self._take("in", apdu)
        if f is None:
            return Answer(ACK)
        if f.kind == "nak":
            with self._lock:
                if f.count > 1:
                    self._nak_left[apdu] = f.count - 1
            return Answer(NAK)
        if f.kind == "no_ack":
            return Answer(None, delay=f.delay or 5.1, real_pause=REAL_SETTLE)
        return Answer(ACK, delay=f.delay or 5.1, real_pause=REAL_SETTLE)
