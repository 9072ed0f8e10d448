"""After a broker restart, thousands of devices must not reconnect in the same second: each sender waits a
jittered delay whose cap doubles with every loss since its last good connect."""

from __future__ import annotations

import random
import statistics

from core.sync.signing import KeyRing, Signer
from edge.sync.sender import SenderSettings, SyncSender


def sender(seed: int, min_s: float = 1.0, max_s: float = 60.0) -> SyncSender:
    settings = SenderSettings(
        mqtt_url="mqtt://127.0.0.1:1", device_id=f"PD-{seed}", reconnect_min_s=min_s, reconnect_max_s=max_s
    )  # never connects
    return SyncSender(settings, None, Signer.generate(), KeyRing(), rng=random.Random(seed))  # type: ignore[arg-type]


def test_a_fleet_spreads_its_first_reconnect_over_the_jitter_window() -> None:
    first = [sender(seed).next_reconnect_delay() for seed in range(300)]
    assert all(0.5 <= d <= 1.0 for d in first)
    assert statistics.pstdev(first) > 0.1  # spread over the window, not one instant
    slots = [sum(1 for d in first if 0.5 + k * 0.05 <= d < 0.55 + k * 0.05) for k in range(10)]
    assert max(slots) <= 60, slots  # no 50 ms slot takes more than a fifth of the fleet (a herd: all 300)


def test_the_cap_doubles_with_each_loss_and_stops_at_the_maximum() -> None:
    s = sender(7, min_s=1.0, max_s=60.0)
    delays = [s.next_reconnect_delay() for _ in range(10)]
    caps = [min(60.0, 2.0**k) for k in range(10)]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True)), delays
    assert max(delays) <= 60.0 and delays[-1] >= 30.0
