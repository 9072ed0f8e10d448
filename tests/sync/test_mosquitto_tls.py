"""The production broker config (deploy/mosquitto/mosquitto.conf) on a private Mosquitto with TLS client
certificates made here: the real device sender and ingest worker sync end to end over ``mqtts://``; a client
without a certificate, or with one from another CA, is refused; a device cannot publish to another device's
topics nor read its acks; several ingest workers share the ``ingest-svc`` identity; ``patrol-server device
cert`` issues certificates the broker accepts."""

from __future__ import annotations

import getpass
import queue
import signal
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import (
    T0,
    CertificateAccounts,
    SyncRig,
    fill_outbox,
    free_port,
    mosquitto_binary,
    require_mosquitto,
    wait_for,
)

from core.sync.signing import Signer
from server.cli import main as server_cli
from server.commands.device import add_device, issue_client_cert, revoke_client_certs
from server.db.sync import SyncInbox
from server.ingest.worker import IngestSettings, IngestWorker

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = mosquitto_binary()


@pytest.fixture(autouse=True)
def _mosquitto() -> None:
    require_mosquitto()


NOW = datetime.now(UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(name: str) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_server_cert(ca_cert_pem: bytes, ca_key_pem: bytes) -> tuple[bytes, bytes]:
    """The broker's certificate for 127.0.0.1 and localhost, signed by the device CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: tuple[bytes, bytes]  # device CA: devices' certificates and the broker's
    services_ca: tuple[bytes, bytes]  # CA of the ingest-svc certificates (service listener only)
    foreign_ca: tuple[bytes, bytes]  # a CA the broker does not know

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    def issue(self, cn: str, ca: tuple[bytes, bytes] | None = None) -> ClientCert:
        key_pem, cert_pem = issue_client_cert(*(ca or self.ca), cn, NOW)
        assert key_pem is not None
        tag = uuid.uuid4().hex[:6]
        cert, key = self.dir / f"{cn}-{tag}.crt", self.dir / f"{cn}-{tag}.key"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        return ClientCert(cert, key)


@dataclass(frozen=True)
class Broker:
    device_port: int
    service_port: int
    log: Path

    @property
    def device_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.device_port}"

    @property
    def service_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.service_port}"


def derived_config(pki: Pki, device_port: int, service_port: int, crl: Path | None = None) -> str:
    """deploy/mosquitto/mosquitto.conf with ports, file paths and persistence replaced; every other directive
    (TLS, identity, ACL, limits) kept as it is; with ``crl``, the commented ``crlfile`` of the device listener
    is turned on."""
    ports = iter((device_port, service_port))
    files = {
        "cafile": {"ca.crt": pki.dir / "ca.crt", "services-ca.crt": pki.dir / "services-ca.crt"},
        "certfile": {"server.crt": pki.dir / "server.crt"},
        "keyfile": {"server.key": pki.dir / "server.key"},
    }
    out = [f"user {getpass.getuser()}", f"log_dest file {pki.dir / 'mosquitto.log'}"]
    for line in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines():
        words = line.split()
        if crl is not None and words[:2] == ["#", "crlfile"]:
            out.append(f"crlfile {crl}")
            continue
        if not words or words[0].startswith("#"):
            continue
        key = words[0]
        if key == "listener":
            out.append(f"listener {next(ports)} 127.0.0.1")
        elif key in files:
            out.append(f"{key} {files[key][Path(words[1]).name]}")
        elif key == "acl_file":
            out.append(f"acl_file {ROOT / 'deploy/mosquitto/patrolkit.acl'}")
        elif key == "persistence":
            out.append("persistence false")
        elif key in ("persistence_location", "autosave_interval"):
            continue
        else:
            out.append(line)
    assert next(ports, None) is None, "the production config should have a device and a service listener"
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    p = Pki(d, make_ca("patrolkit device CA"), make_ca("patrolkit services CA"), make_ca("someone else"))
    server_cert, server_key = make_server_cert(*p.ca)
    (d / "ca.crt").write_bytes(p.ca[0])
    (d / "services-ca.crt").write_bytes(p.services_ca[0])
    (d / "server.crt").write_bytes(server_cert)
    (d / "server.key").write_bytes(server_key)
    return p


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[Broker]:
    b = Broker(free_port(), free_port(), pki.dir / "mosquitto.log")
    conf = pki.dir / "mosquitto.conf"
    conf.write_text(derived_config(pki, b.device_port, b.service_port))
    assert MOSQUITTO is not None
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        for port in (b.device_port, b.service_port):
            wait_for(lambda port=port: _listening(port), 20, f"mosquitto on {port}")  # type: ignore[misc]
        yield b
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- a bare MQTT CONNECT over TLS, to see exactly what the broker answers ---
def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return bytes((0x10, len(body))) + body


def broker_reply(port: int, pki: Pki, cert: ClientCert | None) -> bytes:
    """The broker's first bytes after a TLS handshake and a CONNECT (b'' or an SSL error = refused)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(_connect_packet(f"probe-{uuid.uuid4().hex[:6]}"))
        return tls.recv(4)


def refused(port: int, pki: Pki, cert: ClientCert | None) -> str:
    """How the broker refused this client; fails the test if it answered with a CONNACK instead."""
    try:
        reply = broker_reply(port, pki, cert)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return type(exc).__name__ + ": " + str(exc)
    assert reply == b"", f"broker answered {reply!r} to a client it should refuse"
    return "connection closed"


CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


class Client:
    """A paho client with a client certificate whose connect, subscribe and messages arrive on queues."""

    def __init__(self, url_port: int, pki: Pki, cert: ClientCert, client_id: str) -> None:
        self.events: queue.Queue[str] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert.cert), keyfile=str(cert.key))
        c.on_connect = lambda _c, _u, _f, rc, _p: self.events.put(f"connect:{rc}")
        c.on_disconnect = lambda *_a: self.events.put("disconnect")
        c.on_subscribe = lambda *_a: self.events.put("suback")
        c.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        c.connect("127.0.0.1", url_port)
        c.loop_start()
        self.c = c
        assert self.events.get(timeout=15) == "connect:Success"

    def subscribe(self, topic: str) -> None:
        self.c.subscribe(topic, qos=1)
        assert self.events.get(timeout=15) == "suback"

    def publish(self, topic: str, data: bytes) -> None:
        self.c.publish(topic, data, qos=1).wait_for_publish(15)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_real_sender_and_ingest_sync_end_to_end_over_tls_client_certificates(
    pki: Pki,
    broker: Broker,
    server_sessions: sessionmaker[Session],
    device_sessions: sessionmaker[Session],
) -> None:
    device_id = f"PD-{uuid.uuid4().hex[:8]}"
    with server_sessions() as session, session.begin():
        dev = add_device(session, device_id, T0)
    rig = SyncRig(broker.device_url, server_sessions, device_sessions, dev, Signer.generate(), [], [],
                  CertificateAccounts())  # fmt: skip
    svc = pki.issue("ingest-svc", pki.services_ca)
    try:
        for n in range(2):  # two workers on one service identity, sharing the load as in production
            w = IngestWorker(
                IngestSettings(
                    mqtt_url=broker.service_url,
                    client_id=f"ingest-tls-{n}",
                    shared_group="ingest",
                    tls_ca=str(pki.ca_file),
                    tls_cert=str(svc.cert),
                    tls_key=str(svc.key),
                ),
                server_sessions,
                rig.server_signer,
            )
            w.start()
            rig.workers.append(w)
            assert w.wait_subscribed(20), "ingest worker did not subscribe over TLS"
        fill_outbox(device_sessions, 120)
        cert = pki.issue(device_id)
        # no password: the broker takes the username from the certificate's CN
        sender = rig.sender(tls_ca=str(pki.ca_file), tls_cert=str(cert.cert), tls_key=str(cert.key))
        wait_for(lambda: rig.pending() == 0, what="every record acked over TLS")
        with server_sessions() as session:
            rows = session.scalar(
                select(func.count()).select_from(SyncInbox).where(SyncInbox.device_id == device_id)
            )
        assert rows == 120 and sender.acked == 120
    finally:
        for s in rig.senders:
            s.stop()
        for w in rig.workers:
            w.stop()


def test_device_certificate_is_accepted_and_no_certificate_or_foreign_ca_refused(
    pki: Pki, broker: Broker
) -> None:
    assert broker_reply(broker.device_port, pki, pki.issue("PD-OK")) == CONNACK_ACCEPTED
    assert refused(broker.device_port, pki, None)
    assert refused(broker.device_port, pki, pki.issue("PD-OK", pki.foreign_ca))
    # the service listener takes only services-CA certificates: a device cannot pose as a service there
    assert refused(broker.service_port, pki, pki.issue("ingest-svc"))
    service = pki.issue("ingest-svc", pki.services_ca)
    assert broker_reply(broker.service_port, pki, service) == CONNACK_ACCEPTED


def test_device_cannot_publish_to_another_devices_topics_nor_read_its_acks(pki: Pki, broker: Broker) -> None:
    ingest = Client(broker.service_port, pki, pki.issue("ingest-svc", pki.services_ca), "ingest-acl")
    a = Client(broker.device_port, pki, pki.issue("PD-A"), "whatever-a-asks-for")
    try:
        ingest.subscribe("pd/v1/+/up/#")
        a.subscribe("pd/v1/+/ack")
        a.publish("pd/v1/PD-B/up/payment", b"forged")  # PUBACKed to a 3.1.1 client, and dropped
        a.publish("pd/v1/PD-A/up/payment", b"own")
        assert ingest.messages.get(timeout=15) == ("pd/v1/PD-A/up/payment", b"own")
        ingest.publish("pd/v1/PD-B/ack", b"for B")
        ingest.publish("pd/v1/PD-A/ack", b"for A")
        assert a.messages.get(timeout=15) == ("pd/v1/PD-A/ack", b"for A")
        assert ingest.messages.empty() and a.messages.empty()  # the denied ones came before, in order
    finally:
        a.close()
        ingest.close()


def test_ingest_workers_share_the_service_identity_without_kicking_each_other(
    pki: Pki, broker: Broker
) -> None:
    svc = pki.issue("ingest-svc", pki.services_ca)
    first = Client(broker.service_port, pki, svc, "ingest-k1")
    second = Client(broker.service_port, pki, svc, "ingest-k2")
    try:
        first.subscribe("pd/v1/+/req")  # a full round trip on the first after the second connected
        assert first.events.empty(), "the first worker was disconnected"
        # on the device listener the CN is the client id: a second connection with a device's certificate
        # takes over, and the first is dropped (one live session per device)
        dev = pki.issue("PD-TWICE")
        d1 = Client(broker.device_port, pki, dev, "a")
        d2 = Client(broker.device_port, pki, dev, "b")
        assert d1.events.get(timeout=15) == "disconnect"
        d1.c.loop_stop()
        d2.close()
    finally:
        first.close()
        second.close()


def test_device_cert_command_issues_a_certificate_the_broker_accepts(
    pki: Pki, broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_cert, ca_key = tmp_path / "ca.crt", tmp_path / "ca.key"
    ca_cert.write_bytes(pki.ca[0])
    ca_key.write_bytes(pki.ca[1])
    args = ["device", "cert", "PD-CLI", "--ca-cert", str(ca_cert), "--ca-key", str(ca_key)]
    assert server_cli([*args, "--out", str(tmp_path / "out"), "--mqtt-url", broker.device_url]) == 0
    printed = capsys.readouterr().out
    assert f'url = "{broker.device_url}"' in printed and "tls_cert =" in printed and "password" not in printed
    issued = ClientCert(tmp_path / "out/PD-CLI.crt", tmp_path / "out/PD-CLI.tls.key")
    assert (issued.key.stat().st_mode & 0o777) == 0o600
    assert broker_reply(broker.device_port, pki, issued) == CONNACK_ACCEPTED

    # a CSR made on the device: only its public key is certified, and its CN must be the device id
    device_key = ec.generate_private_key(ec.SECP256R1())

    def csr(cn: str) -> Path:
        req = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(device_key, hashes.SHA256())
        )
        path = tmp_path / f"{cn}.csr"
        path.write_bytes(req.public_bytes(serialization.Encoding.PEM))
        return path

    out = tmp_path / "csr-out"
    assert server_cli([*args[:2], "PD-CSR", *args[3:], "--csr", str(csr("PD-CSR")), "--out", str(out)]) == 0
    signed = x509.load_pem_x509_certificate((out / "PD-CSR.crt").read_bytes())
    assert signed.public_key() == device_key.public_key() and not (out / "PD-CSR.tls.key").exists()
    key_file = tmp_path / "device.key"
    key_file.write_bytes(_key_pem(device_key))
    assert broker_reply(broker.device_port, pki, ClientCert(out / "PD-CSR.crt", key_file)) == CONNACK_ACCEPTED

    capsys.readouterr()
    bad = [*args[:2], "PD-CSR", *args[3:], "--csr", str(csr("PD-OTHER")), "--out", str(tmp_path / "bad")]
    assert server_cli(bad) == 1
    assert "CSR is for CN ['PD-OTHER'], not 'PD-CSR'" in capsys.readouterr().out
    assert not (tmp_path / "bad").exists()


def test_issue_client_cert_refuses_bad_input() -> None:
    ca = make_ca("t")
    with pytest.raises(ValueError, match="certificate CN"):
        issue_client_cert(*ca, "pd/v1/#", NOW)
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        issue_client_cert(ca[0], b"junk", "PD-1", NOW)
    key_pem, cert_pem = issue_client_cert(*ca, "PD-1", NOW, days=7)
    cert: Any = x509.load_pem_x509_certificate(cert_pem)
    assert key_pem is not None
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "PD-1"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def _start_broker(pki: Pki, name: str, crl: Path) -> tuple[subprocess.Popen[bytes], Broker]:
    b = Broker(free_port(), free_port(), pki.dir / f"{name}.log")
    conf = pki.dir / f"{name}.conf"
    conf.write_text(derived_config(pki, b.device_port, b.service_port, crl))
    assert MOSQUITTO is not None
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for port in (b.device_port, b.service_port):
        wait_for(lambda port=port: _listening(port), 20, f"mosquitto on {port}")  # type: ignore[misc]
    return proc, b


def test_a_revoked_device_certificate_is_refused_and_the_others_still_connect(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``patrol-server device revoke`` writes the CA's CRL; with it as the device listener's ``crlfile``
    the lost device is refused at the TLS handshake. Revoking another later keeps the first revoked."""
    ca_cert, ca_key, crl = tmp_path / "ca.crt", tmp_path / "ca.key", tmp_path / "ca.crl"
    ca_cert.write_bytes(pki.ca[0])
    ca_key.write_bytes(pki.ca[1])
    lost, kept, later = pki.issue("PD-LOST"), pki.issue("PD-KEPT"), pki.issue("PD-LATER")
    revoke = ["device", "revoke", "--ca-cert", str(ca_cert), "--ca-key", str(ca_key), "--crl", str(crl)]
    assert server_cli([*revoke, str(lost.cert)]) == 0
    serial = x509.load_pem_x509_certificate(lost.cert.read_bytes()).serial_number
    assert f"revoked serial {serial:x}" in capsys.readouterr().out
    proc, b = _start_broker(pki, "crl", crl)
    try:
        assert refused(b.device_port, pki, lost)
        assert broker_reply(b.device_port, pki, kept) == CONNACK_ACCEPTED
        assert broker_reply(b.device_port, pki, later) == CONNACK_ACCEPTED

        # a certificate of another CA is not ours to revoke: refused, and the list is left as it was
        before = crl.read_bytes()
        assert server_cli([*revoke, str(pki.issue("PD-X", pki.foreign_ca).cert)]) == 1
        assert "was not issued by this CA" in capsys.readouterr().out
        assert crl.read_bytes() == before

        # revoking another one later keeps the first; the broker rereads the list on SIGHUP, no restart
        assert server_cli([*revoke, str(later.cert)]) == 0
        listed = x509.load_pem_x509_crl(crl.read_bytes())
        assert {r.serial_number for r in listed} == {
            serial,
            x509.load_pem_x509_certificate(later.cert.read_bytes()).serial_number,
        }
        assert listed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _is_refused(b.device_port, pki, later), 10, "the reloaded CRL refusing PD-LATER")
        assert refused(b.device_port, pki, lost)
        assert broker_reply(b.device_port, pki, kept) == CONNACK_ACCEPTED
    finally:
        proc.terminate()
        proc.wait(10)
    assert server_cli(revoke) == 0  # issued again before it expires: same entries, next number
    again = x509.load_pem_x509_crl(crl.read_bytes())
    assert {r.serial_number for r in again} == {r.serial_number for r in listed}
    assert again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3


def _is_refused(port: int, pki: Pki, cert: ClientCert) -> bool:
    try:
        return broker_reply(port, pki, cert) != CONNACK_ACCEPTED
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def test_revoke_refuses_a_crl_of_another_ca_and_bad_files() -> None:
    ca, other = make_ca("t"), make_ca("other")
    _key, cert = issue_client_cert(*ca, "PD-1", NOW)
    foreign_crl, _ = revoke_client_certs(*other, [], None, NOW)
    with pytest.raises(ValueError, match="existing CRL was not signed by this CA"):
        revoke_client_certs(*ca, [cert], foreign_crl, NOW)
    with pytest.raises(ValueError, match="existing CRL is not a PEM"):
        revoke_client_certs(*ca, [cert], b"junk", NOW)
    with pytest.raises(ValueError, match="certificate 1 is not a PEM"):
        revoke_client_certs(*ca, [b"junk"], None, NOW)
    with pytest.raises(ValueError, match="CA key does not belong"):
        revoke_client_certs(ca[0], other[1], [cert], None, NOW)
    with pytest.raises(ValueError, match="CRL lifetime"):
        revoke_client_certs(*ca, [cert], None, NOW, days=0)
    crl, added = revoke_client_certs(*ca, [cert, cert], None, NOW)
    assert len(added) == 1 and len(x509.load_pem_x509_crl(crl)) == 1  # the same certificate twice: one entry
