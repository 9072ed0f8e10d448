"""``patrol-server device add``: provision a device (identity, Ed25519 key pair, MQTT credentials) and print
or write its configuration; ``device list`` shows registered devices."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.sync.envelope import valid_device_id
from core.sync.signing import Signer, b64e


@dataclass(frozen=True)
class ProvisionedDevice:
    device_id: str
    kid: str
    private_key_b64: str
    public_key_b64: str
    mqtt_username: str
    mqtt_password: str


def hash_password(password: str, salt: bytes | None = None) -> str:
    """PBKDF2-SHA512 in Mosquitto's ``mosquitto_passwd`` format: ``$7$iterations$salt$hash``."""
    salt = salt or os.urandom(12)
    iterations = 101
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    import base64

    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


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
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(dev.private_key_b64 + "\n")
        (out / f"{dev.device_id}.toml").write_text(toml, encoding="utf-8")
        print(json.dumps({"device_id": dev.device_id, "kid": dev.kid, "key_file": str(key_path)}))
    else:
        print(toml)
        print(f"# private key (base64, keep secret): {dev.private_key_b64}")
    print(f"# mosquitto password file line:\n{dev.mqtt_username}:{hash_password(dev.mqtt_password)}")
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
