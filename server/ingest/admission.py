"""Admission of device records by credit: the ingest grants devices, in turn, the records they may publish, so
that a fleet's backlog waits in the devices' outboxes (durable, in order) and not in the broker's and the
ingest's queues, where every record would wait for the whole backlog ahead of it.

One ``Admission`` per worker, in memory; no shared state between workers or hosts. Each worker keeps what it
granted and not yet seen committed (``outstanding``) under a budget of ``horizon_s`` seconds of its own
measured throughput, so a record admitted now is acked about ``horizon_s`` later.

- A device with records and no credit asks (``credit_ask``); the worker that receives the ask answers it:
  a grant of up to ``grant_max`` records if the budget has room, else ``0`` (queued), and the grant follows
  when room frees. Devices are served first come, first served; a device that asks again goes to the back.
- Records committed by this worker free its own grants first, oldest first. Records beyond them were granted
  by another worker (shared subscriptions spread every device's messages over all workers): they count as
  ``surplus`` and give this worker that much more room, until the other worker's grant lapses and frees its own.
  Summed over the workers, what is counted outstanding is what was granted and not yet committed.
- A grant not used within ``valid_s`` lapses on both sides (the device drops it, the worker stops counting it),
  so a device that went quiet, or a grant whose records another worker committed, cannot hold the budget.
- A device that never hears back (an ingest without admission, or a lost ask) sends as before, within its
  window (``edge.sync.credit``): admission shapes the load; it never stops sync.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class AdmissionSettings:
    enabled: bool = True
    grant_max: int = 500  # records in one grant, at most
    horizon_s: float = 0.5  # the budget: this many seconds of the worker's throughput admitted ahead
    min_budget: int = 500  # records, whatever the measured throughput (a worker just started has none)
    valid_s: float = 3.0  # a grant not used within this lapses
    initial_rate: float = 2000.0  # records/s assumed until the first batches are measured


class Admission:
    """Grants and the budget of one ingest worker. Not thread-safe: the worker's own thread calls it."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.settings = settings
        self._waiting: OrderedDict[str, int] = OrderedDict()  # device -> records it wants, in ask order
        self._grants: deque[list[float]] = deque()  # [when granted (monotonic), records not yet seen]
        self._outstanding = 0.0
        self._surplus: deque[tuple[float, float]] = deque()  # (when, records) committed beyond own grants
        self._surplus_sum = 0.0
        self._rate = settings.initial_rate  # records per second of processing, smoothed
        self.granted = 0  # records granted since start
        self.queued = 0  # asks answered with 0 (queued) since start

    @property
    def waiting(self) -> int:
        """Devices whose ask waits for room."""
        return len(self._waiting)

    @property
    def outstanding(self) -> int:
        """Records granted by this worker and not yet seen committed (nor lapsed)."""
        return round(self._outstanding)

    def budget(self) -> int:
        """Records this worker may have granted and not yet committed."""
        return max(self.settings.min_budget, int(self._rate * self.settings.horizon_s))

    def ask(self, device_id: str, want: int, now: float) -> int:
        """A device asks for ``want`` records: the grant now (0 = queued; ``grants`` hands it out later)."""
        self._lapse(now)
        self._waiting.pop(device_id, None)  # asking again: its earlier ask is answered by this one
        if not self._waiting and self._room() > 0:
            return self._grant(want, now)
        self._waiting[device_id] = want
        self.queued += 1
        return 0

    def grants(self, now: float) -> list[tuple[str, int]]:
        """Grants for waiting devices, first asked first, while the budget has room."""
        self._lapse(now)
        out: list[tuple[str, int]] = []
        while self._waiting and self._room() > 0:
            device_id, want = self._waiting.popitem(last=False)
            out.append((device_id, self._grant(want, now)))
        return out

    def committed(self, records: int, seconds: float, now: float) -> None:
        """This worker committed ``records`` device records in a batch that took ``seconds`` to handle."""
        left = float(records)
        while left > 0 and self._grants:
            head = self._grants[0]
            used = min(head[1], left)
            head[1] -= used
            left -= used
            self._outstanding -= used
            if head[1] <= 0:
                self._grants.popleft()
        self._outstanding = max(0.0, self._outstanding)
        if left > 0:  # another worker's grants: room here until they lapse there
            self._surplus.append((now, left))
            self._surplus_sum += left
        if records >= 50 and seconds > 0:  # small batches say more about the per-batch cost than the rate
            self._rate = 0.8 * self._rate + 0.2 * (records / seconds)

    def _room(self) -> float:
        budget = self.budget()
        return budget - self._outstanding + min(self._surplus_sum, budget)

    def _grant(self, want: int, now: float) -> int:
        n = max(1, min(want, self.settings.grant_max, math.ceil(self._room())))
        self._grants.append([now, float(n)])
        self._outstanding += n
        self.granted += n
        return n

    def _lapse(self, now: float) -> None:
        horizon = now - self.settings.valid_s
        while self._grants and self._grants[0][0] < horizon:
            self._outstanding -= self._grants.popleft()[1]
        self._outstanding = max(0.0, self._outstanding)
        while self._surplus and self._surplus[0][0] < horizon:
            self._surplus_sum -= self._surplus.popleft()[1]
        self._surplus_sum = max(0.0, self._surplus_sum)
