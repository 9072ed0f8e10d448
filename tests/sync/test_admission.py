"""Admission by credit: the ingest grants records in turn, the device sends only within its grant, and a device
whose server never answers still drains (within its window)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sync_harness import SyncRig, fill_outbox, on_private_mosquitto, publish_as, wait_for

from core.clock import FakeClock
from core.sync.control import Credit, CreditAsk, ctl_topic, parse_control, req_topic, seal
from core.sync.envelope import EnvelopeError
from core.sync.signing import DOMAIN_CONTROL, DOMAIN_REQUEST, Signer
from edge.sync.credit import BadCreditTransition, CreditSettings, CreditState, SendCredit
from server.db.sync import SyncDeadLetter, SyncInbox
from server.ingest.admission import Admission, AdmissionSettings

# --- the worker's budget ------------------------------------------------------------------------------------


def small(**kw: float) -> Admission:
    base = {"grant_max": 100, "target_s": 0.5, "min_budget": 250, "initial_budget": 0, "valid_s": 5.0}
    return Admission(AdmissionSettings(**{**base, **kw}))  # type: ignore[arg-type]


def test_asks_are_granted_up_to_the_budget_then_queued_and_served_in_ask_order_as_records_commit() -> None:
    a = small()
    assert [a.ask(f"d{i}", 100, 0.0) for i in range(4)] == [100, 100, 50, 0]  # 250 records of budget
    assert (a.outstanding, a.waiting) == (250, 1)
    assert a.ask("d4", 30, 0.1) == 0  # someone waits: a new ask queues behind it
    assert a.grants(0.2) == []  # no room yet
    a.committed(100, 0.25)  # a worker's batch: 100 records seen committed
    assert a.grants(0.3) == [("d3", 100)]
    a.committed(150, 0.35)
    assert a.grants(0.4) == [("d4", 30)]
    assert (a.waiting, a.granted) == (0, 380)


def test_a_device_asking_again_before_its_answer_keeps_its_place_and_is_counted_once() -> None:
    a = small(min_budget=100)
    assert a.ask("busy", 100, 0.0) == 100
    assert a.ask("d1", 10, 0.0) == 0 and a.ask("d2", 10, 0.0) == 0 and a.ask("d1", 20, 0.0) == 0
    a.committed(100, 0.05)
    assert a.grants(0.1) == [("d1", 20), ("d2", 10)]


def test_an_unused_grant_lapses_so_a_silent_device_cannot_hold_the_budget() -> None:
    a = small(min_budget=100, valid_s=2.0)
    assert a.ask("silent", 100, 0.0) == 100
    assert a.ask("next", 100, 1.0) == 0
    assert a.grants(1.9) == []
    assert a.grants(2.1) == [("next", 100)]  # the first grant lapsed unused


def test_records_another_worker_granted_give_room_here_until_that_grant_lapses() -> None:
    a, b = small(min_budget=100, valid_s=2.0), small(min_budget=100, valid_s=2.0)
    assert a.ask("d1", 100, 0.0) == 100  # a grants d1; the shared subscription hands d1's records to b
    assert b.ask("d2", 100, 0.0) == 100 and b.ask("d3", 100, 0.0) == 0 and b.ask("d4", 100, 0.0) == 0
    b.committed(200, 0.1)  # d2's records, and d1's, which b did not grant
    assert b.grants(0.2) == [("d3", 100), ("d4", 100)]  # its own room, and d1's grant's until it lapses at a
    assert b.ask("d5", 100, 2.15) == 0  # the surplus lapsed with a's grant: b's own budget alone again
    assert a.ask("d6", 100, 2.3) == 100  # a's grant to d1 lapsed, freeing a's budget


def test_a_lost_link_frees_every_grant_at_once_and_waiting_devices_keep_their_place() -> None:
    a = small(min_budget=100, valid_s=5.0)
    assert a.ask("gone", 100, 0.0) == 100  # the budget is full
    assert a.ask("waits", 50, 0.1) == 0
    a.link_lost()  # the broker restarted: "gone" dropped its grant with its link
    assert a.outstanding == 0
    assert a.grants(0.2) == [("waits", 50)]  # first in line, long before the grant would have lapsed
    assert a.ask("back", 100, 0.3) == 50  # the rest of the budget


def test_the_budget_grows_while_devices_wait_and_acks_are_quick_and_shrinks_once_they_are_slow() -> None:
    a = small(min_budget=100, max_budget=1000, target_s=0.5, adjust_s=0.25)
    t = 0.0
    for i in range(40):  # devices keep asking; the worker keeps its budget in use and acks within 0.1 s
        t += 0.3
        a.ask(f"d{i}", 100, t)
        a.grants(t)
        a.observe(0.1, t)
    assert a.budget() == 1000  # grown to its ceiling
    a.observe(0.9, t + 0.3)  # a message took longer than the target
    assert a.budget() == 700
    for _ in range(20):
        t += 0.3
        a.observe(2.0, t)
    assert a.budget() == 100  # never below the floor
    idle = small(min_budget=100)
    for i in range(10):
        idle.observe(0.01, 0.3 * (i + 1))
    assert idle.budget() == 100, "no one waits for room: nothing to grow for"


# --- the device's credit --------------------------------------------------------------------------------------


def test_the_device_sends_only_within_its_grant_and_asks_again_at_half_of_it() -> None:
    c = SendCredit(CreditSettings(probe_s=10.0))
    assert c.allowance(0.0) == 0  # not connected
    c.connected()
    assert c.allowance(0.0) == 0 and c.should_ask(0.0)
    c.asked(0.0)
    assert not c.should_ask(1.0)  # one ask at a time
    c.granted(0, 5.0, 0.5)  # queued
    assert c.state is CreditState.QUEUED and c.allowance(20.0) == 0  # answered: no fallback to unmetered
    c.granted(100, 5.0, 21.0)
    assert c.allowance(21.0) == 100 and not c.should_ask(21.0)
    c.spent(49)
    assert c.allowance(22.0) == 51 and not c.should_ask(22.0)
    c.spent(1)
    assert c.should_ask(22.0)  # half of the grant left: the next one comes while the rest goes out
    c.asked(22.0)
    c.spent(50)
    assert c.allowance(22.1) == 0
    c.granted(100, 5.0, 22.2)
    assert c.allowance(22.2) == 100


def test_records_in_flight_when_the_link_dropped_go_out_again_at_once_after_the_reconnect() -> None:
    c = SendCredit(CreditSettings(resend_valid_s=3.0))
    c.connected()
    c.asked(0.0)
    c.granted(100, 3.0, 0.1)
    c.spent(100)  # all in flight when the broker goes
    c.lost()
    c.connected(resend=100, now=5.0)
    assert (c.state, c.allowance(5.0)) == (CreditState.READY, 100)  # no ask, no wait behind the fleet's backlog
    assert not c.should_ask(5.0)
    c.spent(60)
    assert c.should_ask(5.1)  # under half of it: the ask for the rest goes out while these are resent
    assert c.allowance(8.1) == 0  # what was not resent within its time lapses
    fresh = SendCredit(CreditSettings(enabled=False))
    fresh.connected(resend=100, now=0.0)
    assert (fresh.state, fresh.allowance(0.0)) == (CreditState.UNMETERED, None)


def test_credit_lapses_and_a_lost_link_drops_it() -> None:
    c = SendCredit(CreditSettings())
    c.connected()
    c.asked(0.0)
    c.granted(100, 5.0, 1.0)
    assert c.allowance(5.9) == 100 and c.allowance(6.0) == 0 and c.should_ask(6.0)
    c.asked(7.0)
    c.granted(100, 5.0, 7.1)
    c.lost()
    c.granted(100, 5.0, 7.2)  # the answer to the old connection's ask
    assert c.state is CreditState.NO_LINK and c.allowance(7.3) == 0


def test_a_server_that_never_answers_is_sent_to_unmetered_after_the_probe_time() -> None:
    c = SendCredit(CreditSettings(probe_s=3.0))
    c.connected()
    c.asked(0.0)
    assert c.allowance(2.9) == 0
    assert c.allowance(3.0) is None and c.state is CreditState.UNMETERED and not c.should_ask(3.0)
    c.granted(50, 5.0, 4.0)  # a late answer: metered again
    assert c.allowance(4.0) == 50


def test_an_ask_lost_on_the_way_is_sent_again_later_each_time_before_the_probe_gives_up() -> None:
    c = SendCredit(CreditSettings(reask_s=2.0, probe_s=20.0))  # lost in a broker restart, say
    c.connected()
    c.asked(0.0)
    assert c.next_due() == 2.0 and not c.should_ask(1.9) and c.should_ask(2.0)
    c.asked(2.0)
    assert c.next_due() == 6.0 and not c.should_ask(5.9)  # twice as long: a slow answer brings no storm
    c.asked(6.0)
    assert c.next_due() == 14.0 and c.allowance(13.9) == 0
    c.asked(14.0)
    assert c.next_due() == 20.0  # the probe ends 20 s after the first ask, whatever was asked since
    assert c.allowance(20.0) is None and c.next_due() is None
    c.granted(10, 5.0, 21.0)  # a late answer: metered again, and the next ask waits the first delay again
    c.spent(10)
    c.asked(21.5)
    assert c.next_due() == 23.5


def test_a_queued_ask_is_asked_again_if_no_grant_follows() -> None:
    c = SendCredit(CreditSettings(requeue_s=60.0))
    c.connected()
    c.asked(0.0)
    c.granted(0, 5.0, 0.1)
    assert not c.should_ask(59.0) and c.should_ask(60.2)


def test_transitions_outside_the_table_are_refused() -> None:
    c = SendCredit(CreditSettings())
    with pytest.raises(BadCreditTransition):
        c.asked(0.0)  # not connected: nothing to ask on


def test_credit_messages_are_bounded_and_typed() -> None:
    assert parse_control(b'{"type":"credit_ask","dev":"d","want":5}') == CreditAsk(dev="d", want=5)
    for bad in (
        b'{"type":"credit_ask","dev":"d","want":0}',
        b'{"type":"credit_ask","dev":"d","want":100001}',
        b'{"type":"credit","dev":"d","records":-1,"valid_s":5,"ts":"t"}',
        b'{"type":"credit","dev":"d","records":5,"valid_s":0,"ts":"t"}',
        b'{"type":"credit","dev":"d","records":5,"valid_s":1e9,"ts":"t"}',
    ):
        with pytest.raises(EnvelopeError):
            parse_control(bad)


# --- end to end through the broker ----------------------------------------------------------------------------


def test_a_device_drains_in_grants_never_holding_more_in_flight_than_the_budget(rig: SyncRig) -> None:
    fill_outbox(rig.device, 300)
    worker = rig.worker(
        admission=AdmissionSettings(grant_max=20, min_budget=40, max_budget=40)
    )
    sender = rig.sender(window=200, batch=10)
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sender.inflight)
            done.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_for(lambda: rig.pending() == 0, what="outbox drained")
    finally:
        done.set()
        watcher.join()
    assert sender.acked == 300 and sender.resends == 0
    assert sender.health()["credit"] in ("ready", "asking", "queued")
    assert worker.admission.granted >= 300
    # without admission the window (200) would be filled at once; with it, at most the budget is unacked,
    # plus acks still on their way back (each grant is freed when its records commit, before the ack arrives)
    assert 0 < peak <= 60, peak
    with rig.server() as session:
        assert session.scalar(select(func.count()).select_from(SyncInbox)) == 300


def test_a_worker_back_from_a_broker_restart_grants_the_devices_coming_back_at_once(
    rig: SyncRig, tmp_path: Path
) -> None:
    with on_private_mosquitto(rig, tmp_path) as (local, broker):
        # one grant fills the budget, and on the worker's stopped clock no grant ever lapses
        budget = AdmissionSettings(grant_max=50, min_budget=50, initial_budget=50, max_budget=50)
        worker = local.worker(clock=FakeClock(), admission=budget)
        dev = rig.dev.device_id
        ask = seal(rig.signer, DOMAIN_REQUEST, CreditAsk(dev=dev, want=50))
        publish_as(broker.url, rig.dev.mqtt_username, rig.dev.mqtt_password, [(req_topic(dev), ask)])
        wait_for(lambda: worker.admission.outstanding == 50, what="the ask granted: the budget is full")

        broker.stop()  # the broker restarts: every device's link drops, and a device's grant with it
        broker.start()
        wait_for(lambda: worker.connected and worker.admission.outstanding == 0, what="the worker back, its grants forgotten")
        fill_outbox(rig.device, 100)
        local.sender(window=100, batch=10, credit=CreditSettings(probe_s=600.0))  # it waits for grants
        wait_for(lambda: rig.pending() == 0, what="the device coming back granted and drained")
        assert worker.admission.granted >= 150


def test_an_ingest_without_admission_is_sent_to_within_the_window_after_the_probe(rig: SyncRig) -> None:
    fill_outbox(rig.device, 50)
    rig.worker(admission=AdmissionSettings(enabled=False))
    sender = rig.sender(window=100, batch=10, credit=CreditSettings(probe_s=1.0))
    wait_for(lambda: rig.pending() == 0, what="outbox drained without credit")
    assert sender.health()["credit"] == "unmetered"
    with rig.server() as session:
        assert session.scalar(select(func.count()).select_from(SyncInbox)) == 50
        assert session.scalar(select(func.count()).select_from(SyncDeadLetter)) == 0  # the ask was understood


def test_a_credit_signed_by_anyone_but_the_server_is_refused_and_the_servers_own_is_used(rig: SyncRig) -> None:
    fill_outbox(rig.device, 20)
    rig.worker(admission=AdmissionSettings(enabled=False))  # it never answers: the test grants by hand
    sender = rig.sender(window=100, batch=10, credit=CreditSettings(probe_s=60.0))
    wait_for(lambda: sender.health()["credit"] == "asking", what="the device asked")
    dev = rig.dev.device_id

    def grant(signer: Signer) -> None:
        credit = seal(signer, DOMAIN_CONTROL, Credit(dev=dev, records=20, valid_s=30, ts="t"))
        publish_as(rig.mqtt_url, "ingest-svc", rig.accounts.ingest_password, [(ctl_topic(dev), credit)])

    grant(Signer.generate())  # a forger with the ingest's broker account but not the server's key
    time.sleep(1.0)
    assert sender.health()["credit"] == "asking" and rig.pending() == 20 and sender.sent_records == 0
    grant(rig.server_signer)
    wait_for(lambda: rig.pending() == 0, what="drained under the server's grant")
