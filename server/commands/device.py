"""``patrol-server device add``: provision a device (identity, Ed25519 key pair, MQTT credentials) and print
or write its configuration; ``device cert`` issues its TLS client certificate (CN = device id) from the CA files;
``device revoke`` adds lost devices' certificates to the CA's revocation list (the broker's ``crlfile``);
``device list`` shows registered devices."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.sync.envelope import valid_device_id
from core.sync.signing import Signer, b64e
from server.mqtt_accounts import hash_password


@dataclass(frozen=True)
class ProvisionedDevice:
    device_id: str
    kid: str
    private_key_b64: str
    public_key_b64: str
    mqtt_username: str
    mqtt_password: str


def add_device(session: Session, device_id: str, now: datetime, label: str = "") -> ProvisionedDevice:
    """Register a new device with a fresh key pair and MQTT password; ``ValueError`` if invalid or taken."""
    from server.db.devices import Device

    if not valid_device_id(device_id):
        raise ValueError(f"device id {device_id!r}: use 1-64 letters, digits, '_', '.', '-'")
    if session.scalar(select(Device.device_id).where(Device.device_id == device_id)):
        raise ValueError(f"device {device_id} is already registered")
    signer = Signer.generate()
    password = secrets.token_urlsafe(24)
    session.add(
        Device(
            device_id=device_id,
            kid=signer.kid,
            public_key_b64=b64e(signer.public_raw()),
            mqtt_username=device_id,
            mqtt_password_hash=hash_password(password),
            label=label,
            active=True,
            created_at=now,
        )
    )
    session.flush()
    return ProvisionedDevice(
        device_id, signer.kid, b64e(signer.private_raw()), b64e(signer.public_raw()), device_id, password
    )


def device_config_toml(dev: ProvisionedDevice, mqtt_url: str, server_public_key_file: str) -> str:
    """The device's configuration section for its TOML file (the key itself goes in a separate file)."""
    return (
        f'[device]\nid = "{dev.device_id}"\n\n'
        f'[mqtt]\nurl = "{mqtt_url}"\nusername = "{dev.mqtt_username}"\npassword = "{dev.mqtt_password}"\n\n'
        f'[server]\npublic_key_files = ["{server_public_key_file}"]\n'
    )


def _write_secret(path: Path, content: str | bytes) -> None:
    """Write a file only its owner may read (mode 0600, also when it existed before with wider rights)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content.encode("utf-8") if isinstance(content, str) else content)


def _add(args: argparse.Namespace) -> int:
    from server.config import load_server_config
    from server.db.base import make_engine, make_sessionmaker

    config = load_server_config(args.config)
    engine = make_engine(config.database.url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            dev = add_device(session, args.device_id, datetime.now(UTC), args.label)
    except ValueError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        engine.dispose()
    toml = device_config_toml(
        dev, args.mqtt_url or config.mqtt.url, str(config.keys.signing_key_file) + ".pub"
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        key_path = out / f"{dev.device_id}.key"
        _write_secret(key_path, dev.private_key_b64 + "\n")
        _write_secret(out / f"{dev.device_id}.toml", toml)  # holds the MQTT password
        print(json.dumps({"device_id": dev.device_id, "kid": dev.kid, "key_file": str(key_path)}))
    else:
        print(toml)
        print(f"# private key (base64, keep secret): {dev.private_key_b64}")
    print(f"# mosquitto password file line:\n{dev.mqtt_username}:{hash_password(dev.mqtt_password)}")
    return 0


CERT_DAYS = 825
CRL_DAYS = 180  # a revocation list past its next update makes the broker refuse every device


def issue_client_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str,
    now: datetime,
    days: int = CERT_DAYS,
    csr_pem: bytes | None = None,
) -> tuple[bytes | None, bytes]:
    """A TLS client certificate with CN = ``common_name`` (a device id, or ``ingest-svc``) signed by the CA.

    With ``csr_pem`` the device keeps its key: the CSR's signature and CN are checked and only its public key
    is certified (returns ``(None, cert)``); without it a P-256 key is made here (returns ``(key, cert)``).
    ``ValueError`` names what is wrong (bad CN, CSR not signed by its key, CN mismatch, unreadable CA files).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not valid_device_id(common_name):
        raise ValueError(f"certificate CN {common_name!r}: use 1-64 letters, digits, '_', '.', '-'")
    if not 1 <= days <= 3650:
        raise ValueError(f"certificate lifetime {days} days: use 1..3650")
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    key_pem: bytes | None = None
    if csr_pem is None:
        key = ec.generate_private_key(ec.SECP256R1())
        public_key: CertificatePublicKeyTypes = key.public_key()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise ValueError(f"CSR is not a PEM certificate request: {exc}") from None
        if not csr.is_signature_valid:
            raise ValueError("CSR signature does not verify with its own public key")
        names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if names != [common_name]:
            raise ValueError(f"CSR is for CN {names!r}, not {common_name!r}")
        public_key = csr.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _load_ca(ca_cert_pem: bytes, ca_key_pem: bytes) -> tuple[Any, Any]:
    """The CA certificate and its EC or RSA private key; ``ValueError`` if unreadable or of another kind."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"CA certificate or key is not an unencrypted PEM file: {exc}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("CA key must be an EC or RSA private key")
    if ca_cert.public_key() != ca_key.public_key():
        raise ValueError("CA key does not belong to the CA certificate")
    return ca_cert, ca_key


def revoke_client_certs(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    cert_pems: list[bytes],
    crl_pem: bytes | None,
    now: datetime,
    days: int = CRL_DAYS,
) -> tuple[bytes, list[int]]:
    """The CA's revocation list with ``cert_pems`` added to what ``crl_pem`` (if any) already revokes.

    Returns ``(crl_pem, serials newly revoked)``. Each certificate must have been issued by this CA and the
    old list signed by it; the new list gets the next CRL number and expires ``days`` from now (Mosquitto
    then refuses every client: issue it again before, with no certificate to re-sign it). ``ValueError``
    names what is wrong; nothing is written here."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization

    if not 1 <= days <= 3650:
        raise ValueError(f"CRL lifetime {days} days: use 1..3650")
    ca_cert, ca_key = _load_ca(ca_cert_pem, ca_key_pem)
    revoked: dict[int, x509.RevokedCertificate] = {}
    number = 0
    if crl_pem is not None:
        try:
            old = x509.load_pem_x509_crl(crl_pem)
        except ValueError as exc:
            raise ValueError(f"existing CRL is not a PEM revocation list: {exc}") from None
        if old.issuer != ca_cert.subject or not old.is_signature_valid(ca_key.public_key()):
            raise ValueError("existing CRL was not signed by this CA")
        revoked = {r.serial_number: r for r in old}
        try:
            number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = 0
    added: list[int] = []
    for n, pem in enumerate(cert_pems, 1):
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ValueError(f"certificate {n} is not a PEM certificate: {exc}") from None
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            who = cert.subject.rfc4514_string()
            raise ValueError(f"certificate {n} ({who}) was not issued by this CA") from None
        if cert.serial_number not in revoked:
            revoked[cert.serial_number] = (
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build()
            )
            added.append(cert.serial_number)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(number + 1), critical=False)
    )
    for entry in revoked.values():
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM), added


def _revoke(args: argparse.Namespace) -> int:
    crl_path = Path(args.crl)
    try:
        crl_pem, added = revoke_client_certs(
            Path(args.ca_cert).read_bytes(),
            Path(args.ca_key).read_bytes(),
            [Path(c).read_bytes() for c in args.certs],
            crl_path.read_bytes() if crl_path.exists() else None,
            datetime.now(UTC),
            args.days,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    tmp = crl_path.with_name(crl_path.name + ".tmp")
    tmp.write_bytes(crl_pem)
    os.replace(tmp, crl_path)  # the broker never reads half a list
    for serial in added:
        print(f"revoked serial {serial:x}")
    print(f"{crl_path}: valid {args.days} days; reload the broker (SIGHUP) for it to take effect")
    return 0


def device_tls_toml(mqtt_url: str, ca_file: str, cert_file: str, key_file: str) -> str:
    """The device's ``[mqtt]`` section for a client-certificate broker (no password: the CN is the username)."""
    return f'[mqtt]\nurl = "{mqtt_url}"\ntls_ca = "{ca_file}"\ntls_cert = "{cert_file}"\ntls_key = "{key_file}"\n'


def _cert(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        key_pem, cert_pem = issue_client_cert(
            Path(args.ca_cert).read_bytes(),
            Path(args.ca_key).read_bytes(),
            args.device_id,
            datetime.now(UTC),
            args.days,
            Path(args.csr).read_bytes() if args.csr else None,
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    cert_path = out / f"{args.device_id}.crt"
    key_path = out / f"{args.device_id}.tls.key"
    if key_pem is not None:
        _write_secret(key_path, key_pem)
    cert_path.write_bytes(cert_pem)
    print(device_tls_toml(args.mqtt_url, args.device_ca or args.ca_cert, str(cert_path), str(key_path)))
    if key_pem is None:
        print(
            f"# tls_key: the key the device made its CSR with (written nowhere here); expected at {key_path}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("device", help="provision and list devices")
    sub = parser.add_subparsers(dest="device_command", required=True)
    add = sub.add_parser("add", help="register a device: key pair, MQTT credentials, configuration")
    add.add_argument("device_id")
    add.add_argument("--label", default="")
    add.add_argument("--mqtt-url", default=None, help="broker URL the device should use")
    add.add_argument("--out", default=None, help="directory to write <id>.key and <id>.toml into")
    add.set_defaults(handler=_add)
    cert = sub.add_parser("cert", help="issue a TLS client certificate (CN = device id) from the CA files")
    cert.add_argument("device_id", help="the device id (or ingest-svc for the ingest service)")
    cert.add_argument("--ca-cert", required=True, help="CA certificate (PEM)")
    cert.add_argument("--ca-key", required=True, help="CA private key (PEM, unencrypted)")
    cert.add_argument(
        "--csr", default=None, help="sign this CSR (the key stays on the device) instead of making a key"
    )
    cert.add_argument("--days", type=int, default=CERT_DAYS)
    cert.add_argument("--out", required=True, help="directory to write <id>.crt (and <id>.tls.key) into")
    cert.add_argument("--mqtt-url", default="mqtts://broker:8883", help="broker URL the device should use")
    cert.add_argument("--device-ca", default=None, help="path of the CA certificate on the device")
    cert.set_defaults(handler=_cert)
    revoke = sub.add_parser("revoke", help="add certificates to the CA's revocation list (broker's crlfile)")
    revoke.add_argument("certs", nargs="*", help="certificate files (PEM) of the lost devices; none: issue the list again (before it expires)")
    revoke.add_argument("--ca-cert", required=True, help="CA certificate (PEM)")
    revoke.add_argument("--ca-key", required=True, help="CA private key (PEM, unencrypted)")
    revoke.add_argument("--crl", required=True, help="the CRL file: extended if it exists, else created")
    revoke.add_argument("--days", type=int, default=CRL_DAYS, help="until the list must be issued again")
    revoke.set_defaults(handler=_revoke)
