"""Hashing of upload bodies on worker threads while they arrive: exact hashes, in order, and a slow body
never holds up another's (devices dock together; some links are slow)."""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.video.body_hash import BackgroundHash


def test_a_body_still_arriving_does_not_hold_up_the_hashing_of_another() -> None:
    with ThreadPoolExecutor(max_workers=1) as one_thread:
        slow = BackgroundHash(hashlib.sha256(), one_thread)
        slow.feed([b"first half of a slow body"])  # its next bytes have not come yet
        fast = BackgroundHash(hashlib.sha256(), one_thread)
        fast.feed([b"a whole", b" body"])
        assert fast.wait().hexdigest() == hashlib.sha256(b"a whole body").hexdigest()
        slow.feed([b", then the rest"])
        digest = slow.wait().hexdigest()
    assert digest == hashlib.sha256(b"first half of a slow body, then the rest").hexdigest()


def test_many_bodies_on_few_threads_each_hash_their_own_bytes_in_order() -> None:
    bodies = [bytes([n]) * (n * 1000 + 1) for n in range(40)]
    written: dict[int, list[bytes]] = {n: [] for n in range(40)}
    with ThreadPoolExecutor(max_workers=3) as workers:
        hashes = [
            BackgroundHash(hashlib.sha256(), workers, lambda block, n=n: written[n].extend(block))
            for n in range(40)
        ]
        for start in range(0, 40_001, 997):  # interleaved, as pieces arrive from many connections
            for n, body in enumerate(bodies):
                if start < len(body):
                    hashes[n].feed([body[start : start + 500], body[start + 500 : start + 997]])
        digests = [h.wait().hexdigest() for h in hashes]
    assert digests == [hashlib.sha256(body).hexdigest() for body in bodies]
    assert [b"".join(written[n]) for n in range(40)] == bodies


def test_a_failing_sink_is_reported_once_the_body_is_in_and_nothing_after_it_is_written() -> None:
    written: list[bytes] = []

    def sink(block: object) -> None:
        if written:
            raise OSError(28, "No space left on device")
        written.append(b"".join(block))  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=2) as workers:
        hashing = BackgroundHash(hashlib.sha256(), workers, sink)
        for n in range(3):
            hashing.feed([bytes([n]) * 10])
        with pytest.raises(OSError, match="No space"):
            asyncio.run(hashing.finish())
    assert written == [b"\x00" * 10]


def test_no_block_may_follow_the_end_of_a_body() -> None:
    with ThreadPoolExecutor(max_workers=1) as workers:
        hashing = BackgroundHash(hashlib.sha256(), workers)
        hashing.close()
        with pytest.raises(ValueError):
            hashing.feed([b"late"])
        assert hashing.wait().hexdigest() == hashlib.sha256().hexdigest()
