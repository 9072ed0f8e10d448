"""The fleet simulator's network loop: one thread moves the bytes of many paho clients through a real broker,
in order and at QoS 1, brings them back after the broker restarts, and retries a refused connect as paho's
own loop does (the sender's delay first, then doubling up to its cap)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.sync.control import ack_topic
from server.commands.device import ProvisionedDevice, add_device
from simulators.demo import free_port
from simulators.fleet import INGEST_USER, Broker, BrokerKind, OwnEmbedded, OwnMosquitto
from simulators.fleet_net import CONNECTORS, NetLoop
from tests.fleet.test_fleet_sim import restartable_broker

PEERS = 30
MESSAGES = 10


@dataclass
class Peer:
    """A paho client as the loop drives it, noting its connects and what it receives."""

    client: mqtt.Client
    net: NetLoop
    subscribe_to: str | None = None
    reconnect_min_s: float = 0.3
    reconnect_max_s: float = 2.0
    connects: list[float] = field(default_factory=list)
    got: list[bytes] = field(default_factory=list)
    subacks: int = 0  # SUBACKs received, or connects when it subscribes to nothing

    def subscribed(self, times: int = 1) -> bool:
        return self.subacks >= times

    def __post_init__(self) -> None:
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._suback()
        self.client.on_message = lambda _c, _ud, msg: self.got.append(bytes(msg.payload))
        self.client.on_disconnect = lambda *_a: self.net.reconnect_later(self, self.reconnect_min_s)

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        self.connects.append(time.monotonic())
        if self.subscribe_to is not None:
            client.subscribe(self.subscribe_to, qos=1)
        else:
            self._suback()

    def _suback(self) -> None:
        self.subacks += 1


def _client(client_id: str, username: str, password: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(100)
    return client


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def broker(server_sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[tuple[Broker, str]]:
    """A broker the test can restart on the same port, and the ingest account's password."""
    password = uuid.uuid4().hex
    kind = restartable_broker()
    own: Broker = OwnMosquitto(tmp_path) if kind is BrokerKind.MOSQUITTO else OwnEmbedded(server_sessions, password)
    own.start()
    try:
        yield own, password
    finally:
        own.stop()


def test_one_thread_carries_many_clients_in_order_and_brings_them_back_after_a_broker_restart(
    broker: tuple[Broker, str], server_sessions: sessionmaker[Session]
) -> None:
    own, ingest_password = broker
    port = int(own.url.rsplit(":", 1)[1])
    with server_sessions() as session, session.begin():
        devices: list[ProvisionedDevice] = [
            add_device(session, f"PD-net-{uuid.uuid4().hex[:6]}-{n}", datetime.now(UTC)) for n in range(PEERS)
        ]
    net = NetLoop()
    peers = [
        Peer(_client(d.device_id, d.mqtt_username, d.mqtt_password), net, subscribe_to=ack_topic(d.device_id))
        for d in devices
    ]
    publisher = Peer(_client(f"net-pub-{uuid.uuid4().hex[:6]}", INGEST_USER, ingest_password), net)
    for peer in [*peers, publisher]:
        net.add(peer, "127.0.0.1", port)
    threads = set(threading.enumerate())
    net.start()
    try:
        _wait(lambda: all(p.subscribed() for p in [*peers, publisher]), 30, "every client subscribed")
        ours = [t.name for t in set(threading.enumerate()) - threads if t.name.startswith("fleet-net")]
        assert "fleet-net" in ours and len(ours) <= 1 + CONNECTORS, ours  # not one per client

        # published from another thread, as the senders' driver threads do: each packet is only queued there
        for n in range(MESSAGES):
            for d in devices:
                publisher.client.publish(ack_topic(d.device_id), f"{n}".encode(), qos=1)
        want = [f"{n}".encode() for n in range(MESSAGES)]
        _wait(lambda: all(len(p.got) >= MESSAGES for p in peers), 30, "every message delivered")
        assert all(p.got == want for p in peers)  # each once, in order

        lost = time.monotonic()
        own.stop()
        own.start()
        _wait(lambda: all(len(p.connects) >= 2 for p in [*peers, publisher]), 30, "every client back")
        back = [p.connects[1] - lost for p in [*peers, publisher]]
        assert min(back) >= publisher.reconnect_min_s  # none came back before its own delay
        _wait(lambda: all(p.subscribed(times=2) for p in peers), 30, "every client subscribed again")
        for d in devices:
            publisher.client.publish(ack_topic(d.device_id), b"after", qos=1)
        _wait(lambda: all(p.got[-1:] == [b"after"] for p in peers), 30, "a message after the restart")
    finally:
        net.closing()
        for peer in [*peers, publisher]:
            peer.client.disconnect()
        net.stop()
    assert not any(t.name.startswith("fleet-net") for t in threading.enumerate())  # stopped with the loop


class CountingClient(mqtt.Client):
    """A paho client noting when each connect is tried."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.tries: list[float] = []

    def reconnect(self) -> mqtt.MQTTErrorCode:
        self.tries.append(time.monotonic())
        return super().reconnect()


def test_a_first_connect_waits_its_start_delay_and_a_refused_one_is_tried_again_doubling_up_to_the_cap() -> None:
    port = free_port()  # nothing listens there
    client = CountingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="refused", protocol=mqtt.MQTTv311)
    net = NetLoop()
    peer = Peer(client, net, reconnect_min_s=0.05, reconnect_max_s=0.2)
    added = time.monotonic()
    net.add(peer, "127.0.0.1", port, after_s=0.2)  # a device that comes online a little after the fleet starts
    net.start()
    try:
        _wait(lambda: len(client.tries) >= 6, 30, "six attempts")
    finally:
        net.closing()
        net.stop()
    assert client.tries[0] - added >= 0.2
    gaps = [b - a for a, b in zip(client.tries, client.tries[1:], strict=False)][:5]
    wanted = [0.05, 0.1, 0.2, 0.2, 0.2]  # paho's loop_forever: the minimum, then doubling, capped
    assert all(g >= w - 0.005 for g, w in zip(gaps, wanted, strict=True)), gaps
    assert net.failed_attempts >= 6
    assert peer.connects == []
