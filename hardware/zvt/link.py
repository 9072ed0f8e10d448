"""ZVT link layer: every frame answered with one ACK/NAK byte; T1 inter-byte gap, T2 ACK wait, 2 repeats.

A ``Link`` is symmetric and serves both the ECR and the terminal simulator. It reads and writes through a
``ByteChannel`` and measures time on an injected ``Clock``, so tests move time by hand. ``LinkFaults`` is the
single place where a simulator bends the rules (bad CRC, NAKs, late ACKs, split frames ...); the ECR uses none.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.clock import Clock
from core.structured_log import log_event
from hardware.zvt.errors import LinkError, ResponseTimeout
from hardware.zvt.framing import ACK, NAK, BadFrame, Control, Frame, FrameDecoder, encode_frame

log = logging.getLogger(__name__)


class ByteChannel(Protocol):
    """A raw byte pipe: a serial port, a pty or a TCP socket."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """Return the bytes available now (at least one), or b"" once ``timeout`` seconds passed without any."""
        ...


@dataclass(frozen=True, slots=True)
class LinkTimers:
    t1: float = 0.2  # max gap between two bytes of one frame
    t2: float = 5.0  # max wait for ACK/NAK
    repeats: int = 2  # repeats after the first send (3 sends in all)
    poll: float = 0.05  # longest single blocking read, so timers are checked often


@dataclass(frozen=True, slots=True)
class WireChunk:
    """Part of a frame to write, after waiting ``pause`` clock seconds (``real_pause`` forces a real gap)."""

    data: bytes
    pause: float = 0.0
    real_pause: float = 0.0


@dataclass(frozen=True, slots=True)
class Answer:
    """How to answer a received good frame: ACK, NAK or nothing, after ``delay`` clock seconds."""

    byte: int | None = ACK
    delay: float = 0.0
    real_pause: float = 0.0  # real seconds after the clock delay, so the peer sees its timer expire first


class LinkFaults:
    """No faults. The simulator overrides these to bend the line rules frame by frame."""

    def outgoing(self, apdu: bytes, wire: bytes, attempt: int) -> Sequence[WireChunk]:
        return (WireChunk(wire),)

    def send_twice(self, apdu: bytes) -> bool:
        return False

    def answer(self, apdu: bytes) -> Answer:
        return Answer()


@dataclass
class LinkStats:
    frames_sent: int = 0
    repeats: int = 0
    frames_received: int = 0
    naks_sent: int = 0
    bad_frames: int = 0
    duplicates_dropped: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    reasons: list[str] = field(default_factory=list)


class Link:
    """Sends and receives APDUs with the ZVT transport rules (P016 §3)."""

    def __init__(
        self,
        channel: ByteChannel,
        clock: Clock,
        timers: LinkTimers | None = None,
        faults: LinkFaults | None = None,
        name: str = "ecr",
    ) -> None:
        self.channel = channel
        self.clock = clock
        self.timers = timers or LinkTimers()
        self.faults = faults or LinkFaults()
        self.name = name
        self.stats = LinkStats()
        self._decoder = FrameDecoder()
        self._inbox: deque[bytes] = deque()
        self._controls: deque[int] = deque()
        self._last_byte_at = 0.0
        self._bad_streak = 0
        self._expect_repeat_of: bytes | None = None

    # ----------------------------------------------------------------- sending
    def send(self, apdu: bytes) -> None:
        """Send one APDU and wait for its ACK; repeat on NAK or T2 up to ``repeats`` times."""
        wire = encode_frame(apdu)
        self._send_acknowledged(apdu, wire)
        if self.faults.send_twice(apdu):
            self._send_acknowledged(apdu, wire)

    def _send_acknowledged(self, apdu: bytes, wire: bytes) -> None:
        t = self.timers
        why = ""
        deadline = self.clock.monotonic() + t.t2
        for attempt in range(t.repeats + 1):
            if attempt:
                self.stats.repeats += 1
                log_event(
                    log, "zvt.link.repeat", link=self.name, attempt=attempt, reason=why, apdu=apdu[:2].hex()
                )
            self._controls.clear()
            for chunk in self.faults.outgoing(apdu, wire, attempt):
                if chunk.real_pause:
                    time.sleep(chunk.real_pause)
                if chunk.pause:
                    self.clock.sleep(chunk.pause)
                # T2 runs from the moment the frame is written: read the clock before the peer can react
                deadline = self.clock.monotonic() + t.t2
                self.channel.write(chunk.data)
                self.stats.bytes_written += len(chunk.data)
            self.stats.frames_sent += 1
            why = "no ACK within T2"
            while True:
                expired = self.clock.monotonic() >= deadline
                if expired:
                    self._pump(deadline)  # one last look at what already arrived
                got = self._take_control()
                if got == ACK:
                    return
                if got == NAK:
                    why = "NAK"
                    break
                if expired:
                    break
                self._pump(deadline)
        raise LinkError(
            f"{self.name}: frame {apdu[:2].hex(' ').upper()} not acknowledged after {t.repeats + 1} sends ({why})"
        )

    def _take_control(self) -> int | None:
        return self._controls.popleft() if self._controls else None

    # --------------------------------------------------------------- receiving
    def receive(self, timeout: float) -> bytes:
        """Next received APDU (already ACKed); ResponseTimeout after ``timeout`` clock seconds."""
        deadline = self.clock.monotonic() + timeout
        while True:
            if self._inbox:
                return self._inbox.popleft()
            if self._bad_streak > self.timers.repeats:
                self._bad_streak = 0
                raise LinkError(f"{self.name}: {self.timers.repeats + 1} bad frames in a row")
            if self.clock.monotonic() >= deadline:
                self._pump(deadline)
                if self._inbox:
                    continue
                raise ResponseTimeout(f"{self.name}: no message within {timeout:g} s")
            self._pump(deadline)

    def poll(self, wait: float = 0.0) -> bytes | None:
        """One bounded read (at most ``wait`` seconds, capped by ``timers.poll``); the next APDU if one is ready."""
        if not self._inbox:
            self._pump(self.clock.monotonic() + wait)
        return self._inbox.popleft() if self._inbox else None

    def _pump(self, deadline: float) -> None:
        """One bounded read; feeds the decoder and answers frames at once."""
        now = self.clock.monotonic()
        wait = min(max(deadline - now, 0.0), self.timers.poll)
        if self._decoder.in_frame:
            wait = min(wait, max(self._last_byte_at + self.timers.t1 - now, 0.0))
        data = self.channel.read(wait)
        now = self.clock.monotonic()
        if self._decoder.in_frame and now - self._last_byte_at > self.timers.t1:
            bad = self._decoder.abort()
            if bad is not None:
                self._on_bad(bad)
        if not data:
            return
        self.stats.bytes_read += len(data)
        self._last_byte_at = now
        for event in self._decoder.feed(data):
            if isinstance(event, Frame):
                self._on_frame(event.apdu)
            elif isinstance(event, BadFrame):
                self._on_bad(event)
            elif isinstance(event, Control):
                self._controls.append(event.byte)

    def _on_bad(self, bad: BadFrame) -> None:
        self.stats.bad_frames += 1
        self.stats.naks_sent += 1
        self.stats.reasons.append(bad.reason)
        self._bad_streak += 1
        log_event(log, "zvt.link.bad_frame", link=self.name, reason=bad.reason)
        self.channel.write(bytes((NAK,)))

    def _on_frame(self, apdu: bytes) -> None:
        answer = self.faults.answer(apdu)
        if answer.delay:
            self.clock.sleep(answer.delay)
        if answer.real_pause:
            time.sleep(answer.real_pause)
        if answer.byte is None:
            log_event(log, "zvt.link.ack_withheld", link=self.name, apdu=apdu[:2].hex())
            return
        self.channel.write(bytes((answer.byte,)))
        if answer.byte != ACK:
            self.stats.naks_sent += 1
            return
        self._bad_streak = 0
        self.stats.frames_received += 1
        if self._expect_repeat_of is not None and self._expect_repeat_of == apdu:
            # Our ACK went out after T2, so the sender repeated a frame we already took.
            self._expect_repeat_of = None
            self.stats.duplicates_dropped += 1
            log_event(log, "zvt.link.repeat_dropped", link=self.name, apdu=apdu[:2].hex())
            return
        self._expect_repeat_of = apdu if answer.delay >= self.timers.t2 else None
        self._inbox.append(apdu)
