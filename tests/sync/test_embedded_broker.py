"""The server's own broker (``mqtt.embedded``, what ``patrol-server run`` starts): its accounts are the devices in
the server database, as provisioning made them, and the ingest account with the configured password; it listens
on loopback unless ``mqtt.bind`` says otherwise."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import T0, free_port
from test_mosquitto_acl import CONNACK_ACCEPTED, connack

from server.broker import start_embedded
from server.commands.device import add_device
from server.config import ServerConfig
from server.db.devices import Device
from simulators.fleet import wait_port


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the listening sockets from /proc (Linux)")
def test_embedded_broker_admits_provisioned_devices_and_the_ingest_only_and_listens_on_loopback(
    server_sessions: sessionmaker[Session],
) -> None:
    with server_sessions() as session, session.begin():
        dev = add_device(session, f"PD-{uuid.uuid4().hex[:8]}", T0)
        gone = add_device(session, f"PD-{uuid.uuid4().hex[:8]}", T0)
        session.execute(update(Device).where(Device.device_id == gone.device_id).values(active=False))
    port = free_port()
    ingest_password = uuid.uuid4().hex
    config = ServerConfig.model_validate(
        {"mqtt": {"url": f"mqtt://127.0.0.1:{port}", "password": ingest_password}}
    )
    thread, stop = start_embedded(config, server_sessions)
    try:
        wait_port(port)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only, by default
        assert connack(port, dev.mqtt_username, dev.mqtt_password, dev.device_id) == CONNACK_ACCEPTED
        assert connack(port, "ingest-svc", ingest_password, "ingest-7") == CONNACK_ACCEPTED
        for user, password, client_id in (
            (dev.mqtt_username, dev.mqtt_password + "x", dev.device_id),  # wrong password
            (gone.mqtt_username, gone.mqtt_password, gone.device_id),  # a disabled device
            (dev.mqtt_username, dev.mqtt_password, "ingest-7"),  # a device under the ingest's client id
            ("ingest-svc", "guess", "ingest-7"),
            (None, None, "anyone"),
        ):
            reply = connack(port, user, password, client_id)
            assert reply != CONNACK_ACCEPTED, f"{user!r} with client id {client_id!r} was let in"
    finally:
        stop()
        thread.join(10)


def test_a_stopping_embedded_broker_drops_a_client_still_in_its_connect_at_once(
    server_sessions: sessionmaker[Session],
) -> None:
    # a client accepted but not yet through its CONNECT is in no session of amqtt's, and closing the listener
    # leaves its connection open: unless the broker drops it, the client waits out its keepalive
    port = free_port()
    config = ServerConfig.model_validate({"mqtt": {"url": f"mqtt://127.0.0.1:{port}", "password": "x" * 16}})
    thread, stop = start_embedded(config, server_sessions)
    wait_port(port)
    stuck = socket.create_connection(("127.0.0.1", port), timeout=5)
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"\x10\x20\x00\x04MQ")  # the start of a CONNECT, the rest never comes
    time.sleep(0.2)  # both accepted by the broker
    stop()
    thread.join(15)
    assert not thread.is_alive()
    for sock in (stuck, half):
        with sock:
            sock.settimeout(5)
            try:
                got = sock.recv(16)
            except ConnectionResetError:
                got = b""
            except TimeoutError:
                pytest.fail("the broker stopped and left a client's connection open")
            assert got == b""  # closed by the broker: the client sees it gone at once
