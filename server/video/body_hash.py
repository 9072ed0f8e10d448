"""SHA-256 of a request body computed on a worker thread while the event loop is still receiving the body.

``hashlib`` and file writes release the GIL, so hashing (and optionally writing to a staging file) one
piece runs beside the receiving of the next on another core instead of after it. The hash is the same as
feeding the pieces in order on one thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue


class BackgroundHash:
    """Feeds pieces, in order, into ``hasher`` (and then ``sink``) on one of ``workers``' threads."""

    def __init__(
        self,
        hasher: hashlib._Hash,
        workers: ThreadPoolExecutor,
        sink: Callable[[bytes | bytearray], None] | None = None,
    ) -> None:
        self.hasher = hasher
        self._sink = sink
        self._pieces: SimpleQueue[bytes | bytearray | None] = SimpleQueue()
        self._closed = False
        self._done = workers.submit(self._run)

    def _run(self) -> None:
        while (piece := self._pieces.get()) is not None:
            self.hasher.update(piece)
            if self._sink is not None:
                self._sink(piece)

    def feed(self, piece: bytes | bytearray) -> None:
        """Queue ``piece``; the caller must not change it afterwards."""
        self._pieces.put(piece)

    def close(self) -> None:
        """No more pieces (also on error: the worker thread ends once it has hashed what it was given)."""
        if not self._closed:
            self._closed = True
            self._pieces.put(None)

    async def finish(self) -> hashlib._Hash:
        """The hasher after every piece fed so far (raises what the sink raised)."""
        self.close()
        await asyncio.wrap_future(self._done)
        return self.hasher
