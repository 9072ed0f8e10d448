"""The production ACL (deploy/mosquitto/patrolkit.acl) on a private Mosquitto: a device can publish only to its
own topics, and the password lines printed by provisioning are accepted by Mosquitto."""

from __future__ import annotations

import getpass
import queue
import shutil
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from test_sync_chaos import free_port, wait_port

from server.commands.device import hash_password

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def client(port: int, user: str, password: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


@pytest.mark.skipif(MOSQUITTO is None, reason="needs the mosquitto binary (installed in CI)")
def test_device_can_publish_only_to_its_own_topics(tmp_path: Path) -> None:
    port = free_port()
    users = {"PD-A": uuid.uuid4().hex, "PD-B": uuid.uuid4().hex, "ingest-svc": uuid.uuid4().hex}
    (tmp_path / "passwd").write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()))
    (tmp_path / "m.conf").write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
        f"acl_file {ROOT / 'deploy/mosquitto/patrolkit.acl'}\nset_tcp_nodelay true\npersistence false\n"
    )
    broker = subprocess.Popen([str(MOSQUITTO), "-c", str(tmp_path / "m.conf")], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        got: queue.Queue[str] = queue.Queue()
        ingest = client(port, "ingest-svc", users["ingest-svc"])
        ingest.on_message = lambda _c, _u, m: got.put(m.topic)
        ingest.subscribe("pd/v1/+/up/#", qos=1)[0]
        a = client(port, "PD-A", users["PD-A"])
        import time

        time.sleep(0.3)  # let the subscription settle (broker-side, no timeout is being waited for)
        a.publish("pd/v1/PD-B/up/payment", b"forged", qos=1).wait_for_publish(5)  # denied, silently
        a.publish("pd/v1/PD-A/up/payment", b"own", qos=1).wait_for_publish(5)
        assert got.get(timeout=5) == "pd/v1/PD-A/up/payment"
        assert got.empty()
        for c in (a, ingest):
            c.disconnect()
            c.loop_stop()
    finally:
        broker.terminate()
        broker.wait(10)
