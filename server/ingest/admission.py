"""Admission of device records by credit: the ingest grants devices, in turn, the records they may publish, so
that a fleet's backlog waits in the devices' outboxes (durable, in order) and not in the broker's and the
ingest's queues, where every record would wait for the whole backlog ahead of it.

One ``Admission`` per worker, in memory; no shared state between workers or hosts. Each worker keeps what it
granted and not yet seen committed (``outstanding``) under a budget that it adjusts to what it measures: the
time its messages spend in it, from arrival to ack. While that stays under ``target_s`` and devices wait for
room, the budget grows by a quarter every ``adjust_s``; once it goes over, the budget shrinks by 30 %. So the
budget settles where the worker is kept busy with a short queue, however long devices take to use a grant.

- A device with records and no credit asks (``credit_ask``); the worker that receives the ask answers it:
  a grant of up to ``grant_max`` records if the budget has room, else ``0`` (queued), and the grant follows
  when room frees. Devices are served first come, first served: a device asking again while it waits keeps its
  place; one that asks again after a grant goes to the back.
- Records committed by this worker free its own grants first, oldest first. Records beyond them were granted
  by another worker (shared subscriptions spread every device's messages over all workers): they count as
  ``surplus`` and give this worker that much more room, until the other worker's grant lapses and frees its own.
  Summed over the workers, what is counted outstanding is what was granted and not yet committed.
- A grant not used within ``valid_s`` lapses on both sides (the device drops it, the worker stops counting it),
  so a device that went quiet, or a grant whose records another worker committed, cannot hold the budget.
- When the worker's own link to the broker comes back after a loss, its grants are forgotten at once: the devices
  dropped theirs with their links (``link_lost``).
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
    grant_max: int = 2000  # records in one grant, at most
    target_s: float = 0.5  # the time from a message's arrival at the worker to its ack that the budget aims at
    min_budget: int = 500  # records
    initial_budget: int = 4000
    max_budget: int = 50_000
    adjust_s: float = 0.25  # how often the budget is adjusted
    valid_s: float = 3.0  # a grant not used within this lapses


class Admission:
    """Grants and the budget of one ingest worker. Not thread-safe: the worker's own thread calls it."""

    def __init__(self, settings: AdmissionSettings) -> None:
        self.settings = settings
        self._waiting: OrderedDict[str, int] = OrderedDict()  # device -> records it wants, in ask order
        self._grants: deque[list[float]] = deque()  # [when granted (monotonic), records not yet seen]
        self._outstanding = 0.0
        self._surplus: deque[tuple[float, float]] = deque()  # (when, records) committed beyond own grants
        self._surplus_sum = 0.0
        self._budget = float(max(settings.min_budget, min(settings.initial_budget, settings.max_budget)))
        self._slowest = 0.0  # the longest arrival-to-ack time seen since the budget was last adjusted
        self._adjusted = 0.0  # monotonic time of the last adjustment
        self.granted = 0  # records granted since start

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
        return int(self._budget)

    def observe(self, latency_s: float, now: float) -> None:
        """A message took ``latency_s`` from its arrival at the worker to its ack; every ``adjust_s`` the budget
        shrinks if one took longer than ``target_s``, and grows if none did while the budget held devices back."""
        self._slowest = max(self._slowest, latency_s)
        if now - self._adjusted < self.settings.adjust_s:
            return
        s = self.settings
        if self._slowest > s.target_s:
            self._budget = max(float(s.min_budget), self._budget * 0.7)
        elif self._waiting and self._outstanding >= 0.75 * self._budget:
            self._budget = min(float(s.max_budget), self._budget * 1.25)
        self._slowest, self._adjusted = 0.0, now

    def ask(self, device_id: str, want: int, now: float) -> int:
        """A device asks for ``want`` records: the grant now (0 = queued; ``grants`` hands it out later)."""
        self._lapse(now)
        if device_id in self._waiting:  # asking again (its answer is late): it keeps its place
            self._waiting[device_id] = want
            return 0
        if not self._waiting and self._room() > 0:
            return self._grant(want, now)
        self._waiting[device_id] = want
        return 0

    def grants(self, now: float) -> list[tuple[str, int]]:
        """Grants for waiting devices, first asked first, while the budget has room."""
        self._lapse(now)
        out: list[tuple[str, int]] = []
        while self._waiting and self._room() > 0:
            device_id, want = self._waiting.popitem(last=False)
            out.append((device_id, self._grant(want, now)))
        return out

    def committed(self, records: int, now: float) -> None:
        """This worker committed ``records`` device records (new, duplicates and refused alike)."""
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

    def link_lost(self) -> None:
        """The worker's link to the broker dropped and came back: the broker's restart, as a rule, which dropped
        every device's link too, and a device drops its grant with its link. Its grants stop counting now
        rather than when they lapse, so devices asking again as they come back find the budget free. Waiting
        devices keep their place."""
        self._grants.clear()
        self._outstanding = 0.0
        self._surplus.clear()
        self._surplus_sum = 0.0

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
