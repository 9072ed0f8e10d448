"""Fixtures for the ZVT driver tests: an in-memory byte channel whose idle reads move a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.clock import FakeClock


class ScriptedChannel:
    """A ``ByteChannel`` for single-threaded link tests.

    ``on_write`` sees every write and returns the bytes the peer sends back (made readable at once).
    A read that finds nothing advances the fake clock by the requested timeout, so timers expire at once.
    """

    def __init__(self, clock: FakeClock, on_write: Callable[[bytes], bytes] | None = None) -> None:
        self.clock = clock
        self.on_write = on_write or (lambda data: b"")
        self.written: list[bytes] = []
        self.inbound = bytearray()
        self.chunk: int | None = None

    def push(self, data: bytes) -> None:
        self.inbound += data

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.inbound += self.on_write(bytes(data))

    def read(self, timeout: float) -> bytes:
        if not self.inbound:
            self.clock.advance(timeout if timeout > 0 else 0.001)
            return b""
        n = self.chunk or len(self.inbound)
        data = bytes(self.inbound[:n])
        del self.inbound[:n]
        return data


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scripted(clock: FakeClock) -> Callable[..., ScriptedChannel]:
    def make(on_write: Callable[[bytes], bytes] | None = None) -> ScriptedChannel:
        return ScriptedChannel(clock, on_write)

    return make
