"""The sender's adaptive ack timeout (``edge.sync.rto``): the RFC 6298 estimate from acked records' round
trips, its floor and ceiling, doubling per timeout of a record, and Karn's rule (no round trips of records
sent more than once); then a real sender through the broker that resends until acked and keeps its rules."""

from __future__ import annotations

import pytest
from sync_harness import SyncRig, fill_outbox, wait_for

from edge.sync.rto import RetransmitTimer


def test_before_any_round_trip_the_timeout_is_the_floor() -> None:
    timer = RetransmitTimer(floor_s=30.0, ceiling_s=300.0)
    assert timer.rto == 30.0 and timer.sent(1) == 30.0


def test_round_trips_give_srtt_plus_four_rttvar_within_floor_and_ceiling() -> None:
    timer = RetransmitTimer(floor_s=1.0, ceiling_s=300.0)
    timer.sample(40.0)  # first sample: srtt = R, rttvar = R/2
    assert (timer.srtt, timer.rttvar, timer.rto) == (40.0, 20.0, 120.0)
    timer.sample(8.0)  # rttvar = 3/4·20 + 1/4·|40-8|; srtt = 7/8·40 + 1/8·8
    assert timer.rttvar == pytest.approx(23.0) and timer.srtt == pytest.approx(36.0)
    assert timer.rto == pytest.approx(36.0 + 4 * 23.0)
    timer.sample(1000.0)
    assert timer.rto == 300.0  # the ceiling
    low = RetransmitTimer(floor_s=5.0, ceiling_s=300.0)
    low.sample(0.01)
    assert low.rto == 5.0  # the floor


def test_each_timeout_of_a_record_doubles_its_next_timeout_up_to_the_ceiling() -> None:
    timer = RetransmitTimer(floor_s=10.0, ceiling_s=100.0)
    assert timer.sent(7) == 10.0
    timer.timed_out([7])
    assert timer.rto == 20.0  # backed off until a round trip is measured
    assert timer.sent(7) == 40.0  # and this record's own doubling on top
    timer.timed_out([7])
    assert timer.sent(7) == 100.0  # the ceiling
    assert timer.sent(8) == 40.0  # a new record: the backed-off timeout
    timer.acked(8)
    timer.sample(1.0)
    assert timer.rto == 10.0  # a round trip measured: the backoff is over


def test_timeouts_found_at_once_back_off_once() -> None:
    timer = RetransmitTimer(floor_s=1.0, ceiling_s=300.0)
    timer.timed_out([1, 2, 3])
    assert timer.rto == 2.0
    timer.timed_out([])
    assert timer.rto == 2.0


def test_a_record_sent_more_than_once_gives_no_round_trip_sample() -> None:
    timer = RetransmitTimer(floor_s=1.0, ceiling_s=300.0)
    timer.sent(1)
    timer.sent(1)  # resent (after a timeout or a reconnect)
    assert timer.acked(1) is False
    timer.sent(2)
    assert timer.acked(2) is True
    timer.timed_out([3])
    timer.sent(3)
    assert timer.acked(3) is True
    timer.sample(0.1)
    assert timer.sent(3) == 1.0  # acked: its doubling is forgotten


def test_the_sender_resends_until_acked_samples_only_records_sent_once(rig: SyncRig) -> None:
    """No ingest at first: every record times out and is sent again (its timeout doubling each time); once
    the ingest runs all are acked, and as each was sent more than once, none gave a round trip (the timeout
    stays backed off). Records sent once afterwards do give round trips, and end the backoff."""
    fill_outbox(rig.device, 30)
    sender = rig.sender(window=100, batch=10, ack_timeout_s=0.3, ack_timeout_max_s=5.0, backoff_max_s=1.0)
    wait_for(lambda: sender.resends >= 60, what="every record timed out twice")
    assert sender._timer.srtt is None
    rig.worker()
    # the sender counts an ack after committing it: wait for the count, not only the outbox
    wait_for(lambda: rig.pending() == 0 and sender.acked == 30, what="outbox drained once the ingest runs")
    assert sender._timer.srtt is None and sender.ack_timeout > 0.3
    assert not sender._timer._sends and not sender._timer._timeouts  # nothing kept for acked records
    fill_outbox(rig.device, 20, prefix="M")
    wait_for(lambda: rig.pending() == 0 and sender.acked == 50, what="the later records drained")
    assert sender._timer.srtt is not None
