"""The sender's retransmission timeout, estimated from acked records' round trips in the manner of TCP
(RFC 6298): a smoothed round trip and its variation give ``RTO = srtt + 4·rttvar``, clamped to a floor and
a ceiling. A timeout doubles it until the next round trip is measured, and a record that timed out waits
twice as long on each further timeout. Round trips of records sent
more than once are never sampled (Karn's rule: their ack may answer any of the copies)."""

from __future__ import annotations

from dataclasses import dataclass, field

ALPHA = 1 / 8  # weight of a new sample in the smoothed round trip
BETA = 1 / 4  # weight of a new sample in the round-trip variation
K = 4  # variations added to the smoothed round trip


@dataclass
class RetransmitTimer:
    """``floor_s`` is the first timeout (before any sample) and the least; ``ceiling_s`` the most."""

    floor_s: float
    ceiling_s: float
    srtt: float | None = None
    rttvar: float = 0.0
    _sends: dict[int, int] = field(default_factory=dict)  # seq -> times sent, until acked
    _timeouts: dict[int, int] = field(default_factory=dict)  # seq -> times it timed out, until acked
    _backoff: int = 0  # timeouts since the last round trip measured: the timeout is doubled that often

    @property
    def rto(self) -> float:
        """The timeout of a record sent for the first time."""
        base = self.floor_s if self.srtt is None else max(self.floor_s, self.srtt + K * self.rttvar)
        return min(self.ceiling_s, base * 2.0 ** min(self._backoff, 20))

    def sent(self, seq: int) -> float:
        """Note a send of ``seq``; return its timeout (doubled for each time it timed out, at most the
        ceiling)."""
        self._sends[seq] = self._sends.get(seq, 0) + 1
        return min(self.ceiling_s, self.rto * 2.0 ** min(self._timeouts.get(seq, 0), 20))

    def timed_out(self, seqs: list[int]) -> None:
        """``seqs`` were not acked within their timeout (found at once): each one's next timeout is twice as
        long, and so is every timeout until a round trip is measured again."""
        for seq in seqs:
            self._timeouts[seq] = self._timeouts.get(seq, 0) + 1
        if seqs:
            self._backoff += 1

    def acked(self, seq: int) -> bool:
        """Forget ``seq``; True if its round trip may be sampled (it was sent once)."""
        self._timeouts.pop(seq, None)
        return self._sends.pop(seq, 0) == 1

    def sample(self, rtt: float) -> None:
        """Fold one round trip (seconds) of a record sent once into the estimate."""
        rtt = max(rtt, 0.0)
        self._backoff = 0
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
            return
        self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
        self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt
