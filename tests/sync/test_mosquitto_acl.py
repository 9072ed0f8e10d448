"""The production ACL (deploy/mosquitto/patrolkit.acl) and password accounts, on a private Mosquitto configured as
production is (a device listener that makes the username the client id, a service listener) and on the embedded
amqtt broker (``server.broker``) given the same files: the same tests, the same outcomes. A device reads and
writes only its own topics, anonymous and wrong passwords are refused, the password lines printed by
provisioning are accepted, and a device account cannot take over the ingest's client id."""

from __future__ import annotations

import getpass
import queue
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sync_harness import free_port, mosquitto_binary, require_mosquitto

from server.mqtt_accounts import hash_password
from server.mqtt_acl import PACKAGED_ACL
from simulators.fleet import wait_port

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = mosquitto_binary()
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


@dataclass
class AclBroker:
    kind: str
    device_port: int  # devices connect here (Mosquitto: use_username_as_clientid, as in production)
    service_port: int  # the ingest connects here
    passwords: dict[str, str]


@pytest.fixture(params=["mosquitto", "embedded"])
def acl_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AclBroker]:
    if request.param == "mosquitto":
        require_mosquitto()
    users = {"PD-A": uuid.uuid4().hex, "PD-B": uuid.uuid4().hex, "ingest-svc": uuid.uuid4().hex}
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()))  # `device add`'s lines
    if request.param == "mosquitto":
        dev, svc = free_port(), free_port()
        (tmp_path / "m.conf").write_text(
            f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\n"
            f"password_file {passwd}\nacl_file {ROOT / 'deploy/mosquitto/patrolkit.acl'}\npersistence false\n"
            f"listener {dev} 127.0.0.1\nuse_username_as_clientid true\nlistener {svc} 127.0.0.1\n"
        )
        cmd = [str(MOSQUITTO), "-c", str(tmp_path / "m.conf")]
    else:
        dev = svc = free_port()
        cmd = [sys.executable, "-m", "server.broker", "--port", str(dev), "--password-file", str(passwd),
               "--acl-file", str(PACKAGED_ACL)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(dev)
        wait_port(svc)
        yield AclBroker(request.param, dev, svc, users)
    finally:
        proc.terminate()
        proc.wait(10)


class Client:
    """A paho client whose connects, disconnects, subscription results and messages arrive on queues."""

    def __init__(self, port: int, user: str, password: str, client_id: str | None = None,
                 clean_session: bool = True) -> None:  # fmt: skip
        self.events: queue.Queue[str] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user,
                        clean_session=clean_session, protocol=mqtt.MQTTv311)  # fmt: skip
        c.username_pw_set(user, password)
        c.on_connect = lambda _c, _u, _f, rc, _p: self.events.put(f"connect:{rc}")
        c.on_disconnect = lambda *_a: self.events.put("disconnect")
        c.on_subscribe = lambda _c, _u, _m, rcs, _p: self.events.put(f"suback:{[r.is_failure for r in rcs]}")
        c.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        c.reconnect_delay_set(60, 60)  # a dropped test client stays down: the test sees it
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.c = c
        answer = self.events.get(timeout=15)
        if answer != "connect:Success":
            c.loop_stop()
            raise ConnectionRefusedError(answer)

    def subscribe(self, topic: str) -> bool:
        """Subscribe; True if the broker granted it (Mosquitto grants all and filters each delivery)."""
        self.c.subscribe(topic, qos=1)
        return self.events.get(timeout=15) == "suback:[False]"

    def publish(self, topic: str, data: bytes, retain: bool = False) -> None:
        self.c.publish(topic, data, qos=1, retain=retain).wait_for_publish(15)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def connack(port: int, user: str | None, password: str | None, client_id: str) -> bytes:
    """The broker's CONNACK to a bare MQTT 3.1.1 CONNECT (b'' if it just closed the connection)."""
    cid = client_id.encode()
    flags, payload = 0x02, len(cid).to_bytes(2, "big") + cid
    for bit, field in ((0x80, user), (0x40, password)):
        if field is not None:
            flags |= bit
            payload += len(field.encode()).to_bytes(2, "big") + field.encode()
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + b"\x00\x3c" + payload
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(bytes((0x10, len(body))) + body)
        try:
            return s.recv(4)
        except ConnectionResetError:
            return b""


def test_device_can_publish_only_to_its_own_topics(acl_broker: AclBroker) -> None:
    pw = acl_broker.passwords
    ingest = Client(acl_broker.service_port, "ingest-svc", pw["ingest-svc"], "ingest-acl")
    a = Client(acl_broker.device_port, "PD-A", pw["PD-A"])
    try:
        assert ingest.subscribe("pd/v1/+/up/#")
        a.publish("pd/v1/PD-B/up/payment", b"forged")  # PUBACKed to a 3.1.1 client, and dropped
        a.publish("pd/v1/PD-B/req", b"forged")
        a.publish("pd/v1/PD-A/ack", b"a fake ack to itself")
        a.publish("pd/v1/PD-A/up/payment", b"own")
        assert ingest.messages.get(timeout=15) == ("pd/v1/PD-A/up/payment", b"own")
        assert ingest.messages.empty()  # the denied ones came before it, in order
    finally:
        a.close()
        ingest.close()


def test_device_cannot_read_another_devices_acks_downlink_or_retained_messages(acl_broker: AclBroker) -> None:
    pw = acl_broker.passwords
    ingest = Client(acl_broker.service_port, "ingest-svc", pw["ingest-svc"], "ingest-acl")
    a = Client(acl_broker.device_port, "PD-A", pw["PD-A"])
    try:
        ingest.publish("pd/v1/PD-B/down/ref", b"B's dataset, retained", retain=True)
        for topic_filter in ("#", "pd/v1/+/ack", "pd/v1/PD-B/down/#", "pd/v1/PD-A/ack"):
            a.subscribe(topic_filter)  # granted or not, what it may not read never arrives
        ingest.publish("pd/v1/PD-B/ack", b"for B")
        ingest.publish("pd/v1/PD-B/down/ctl", b"resend for B")
        ingest.publish("pd/v1/PD-A/ack", b"for A")
        got = a.messages.get(timeout=15)
        assert got == ("pd/v1/PD-A/ack", b"for A")
        while not a.messages.empty():  # the same message again through another granted filter, nothing else
            assert a.messages.get_nowait() == got
        b = Client(acl_broker.device_port, "PD-B", pw["PD-B"])
        assert b.subscribe("pd/v1/PD-B/down/#")
        assert b.messages.get(timeout=15) == ("pd/v1/PD-B/down/ref", b"B's dataset, retained")  # B may
        b.close()
    finally:
        a.close()
        ingest.close()


def test_anonymous_unknown_and_wrong_passwords_are_refused(acl_broker: AclBroker) -> None:
    pw = acl_broker.passwords
    port = acl_broker.device_port
    assert connack(port, "PD-A", pw["PD-A"], "PD-A") == CONNACK_ACCEPTED
    for user, password in ((None, None), ("PD-A", None), ("PD-A", pw["PD-B"]), ("PD-Z", "x"), ("", "")):
        reply = connack(port, user, password, "PD-A")
        assert reply != CONNACK_ACCEPTED, f"{user!r}/{password!r} was let in"
        assert reply == b"" or (reply[:2] == b"\x20\x02" and reply[3] != 0)


def test_a_device_account_cannot_take_over_the_ingests_client_id(acl_broker: AclBroker) -> None:
    pw = acl_broker.passwords
    ingest = Client(acl_broker.service_port, "ingest-svc", pw["ingest-svc"], "ingest-0", clean_session=False)
    try:
        assert ingest.subscribe("pd/v1/+/up/#")
        for clean in (
            True,
            False,
        ):  # a clean session would delete the ingest's session, a resumed one take it
            try:
                thief = Client(acl_broker.device_port, "PD-A", pw["PD-A"], "ingest-0", clean_session=clean)
            except ConnectionRefusedError:
                continue  # refused outright (embedded broker)
            thief.close()  # accepted under its own name as client id (Mosquitto's use_username_as_clientid)
        assert ingest.events.empty(), "the ingest was disconnected"
        a = Client(acl_broker.device_port, "PD-A", pw["PD-A"])
        a.publish("pd/v1/PD-A/up/protocol", b"still delivered")
        assert ingest.messages.get(timeout=15) == ("pd/v1/PD-A/up/protocol", b"still delivered")
        a.close()
    finally:
        ingest.close()
