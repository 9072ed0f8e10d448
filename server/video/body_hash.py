"""SHA-256 of a request body computed on a worker thread while the event loop is still receiving the body.

``hashlib`` and file writes release the GIL, so hashing (and optionally writing to a staging file) one
block of pieces runs beside the receiving of the next on another core instead of after it. The hash is the
same as feeding the pieces in order on one thread.

No thread waits for a body's next bytes: a block is handed to a worker when it comes, and that worker also
takes the blocks queued meanwhile, in order, then returns to the pool. So a slow sender ties up no thread,
and a hundred bodies arriving at once share a few workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

Pieces = Sequence[bytes]


class BackgroundHash:
    """Feeds blocks of pieces, in order, into ``hasher`` (and then ``sink``) on ``workers``' threads. After
    the first error (of the sink: the staging file or store) the rest is dropped and ``finish`` raises it."""

    def __init__(
        self,
        hasher: hashlib._Hash,
        workers: ThreadPoolExecutor,
        sink: Callable[[Pieces], None] | None = None,
    ) -> None:
        self.hasher = hasher
        self._sink = sink
        self._workers = workers
        self._blocks: deque[Pieces] = deque()
        self._guard = threading.Lock()  # covers the queue and the two flags, never the hashing
        self._draining = False
        self._closed = False
        self._error: BaseException | None = None
        self._done: Future[hashlib._Hash] = Future()

    def feed(self, pieces: Pieces) -> None:
        """Queue a block of pieces; the caller must not change them afterwards."""
        with self._guard:
            if self._closed:
                raise ValueError("no block may follow close()")
            self._blocks.append(pieces)
            if self._draining:
                return
            self._draining = True
        try:
            self._workers.submit(self._drain)
        except RuntimeError as exc:  # the pool is shut down (the server is stopping)
            with self._guard:
                self._error = exc
                self._blocks.clear()
                self._draining = False
            raise

    def _drain(self) -> None:
        while True:
            with self._guard:
                if not self._blocks:
                    self._draining = False
                    closed = self._closed
                    break
                block = self._blocks.popleft()
            if self._error is not None:
                continue
            try:
                # One buffer per block: the GIL is let go and taken back twice a block (hash, write), not
                # twice a piece, which matters while the event loop keeps it busy receiving.
                data = block[0] if len(block) == 1 else b"".join(block)
                self.hasher.update(data)
                if self._sink is not None:
                    self._sink((data,))
            except BaseException as exc:  # handed to whoever waits in finish() or wait()
                self._error = exc
        if closed:
            self._settle()

    def _settle(self) -> None:
        """Called once: by ``close`` when no worker is draining, else by the worker that sees the close."""
        if self._error is not None:
            self._done.set_exception(self._error)
        else:
            self._done.set_result(self.hasher)

    def close(self) -> None:
        """No more blocks (also on error: the worker ends once it has hashed what it was given)."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            idle = not self._draining
        if idle:
            self._settle()

    def wait(self) -> hashlib._Hash:
        """Close, then block until every block fed is hashed (and sunk); raises what the sink raised. For a
        worker thread, never the event loop."""
        self.close()
        return self._done.result()

    async def finish(self) -> hashlib._Hash:
        """The hasher after every block fed so far (raises what the sink raised)."""
        self.close()
        return await asyncio.wrap_future(self._done)
