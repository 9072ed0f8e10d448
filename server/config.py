"""The central server's configuration (one TOML file, env prefix ``PATROLKIT_SERVER``); defaults run the demo."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.settings import parse_settings

ENV_PREFIX = "PATROLKIT_SERVER"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSection(Section):
    url: str = "sqlite:///var/server/server.db"  # or postgresql+psycopg://user@host:5432/patrolkit

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return v


class HttpSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8000"


class MqttSection(Section):
    url: str = "mqtt://127.0.0.1:1883"
    embedded: bool = True  # start an amqtt broker inside the server process (demo, laptop)
    bind: str = "127.0.0.1"  # the embedded broker's address ("0.0.0.0": reachable by devices on the network)
    username: str = "ingest-svc"
    password: str | None = None  # the ingest account's; embedded without it: a fresh secret at every start
    topic_root: str = "pd/v1"
    workers: int = Field(1, ge=0, le=64)
    shared_group: str = (
        "ingest"  # $share/<group>/… on Mosquitto/EMQX; not used with the embedded amqtt broker
    )
    gap_timeout_s: float = Field(30.0, gt=0)
    resend_interval_s: float = Field(60.0, gt=0)
    stall_s: float = Field(
        60.0, gt=0
    )  # /healthz: 503 once a message has waited this long for an ingest worker
    tls_ca: str | None = None  # with mqtts://: CA of the broker; cert/key = the ingest-svc client certificate
    tls_cert: str | None = None
    tls_key: str | None = None


class StorageSection(Section):
    video_dir: Path = Path("var/server/video")
    max_segment_bytes: int = Field(512 * 1024 * 1024, ge=1024)


class KeysSection(Section):
    signing_key_file: Path = Path("var/server/server_ed25519.key")  # base64 raw; public half in <file>.pub


class ServerConfig(Section):
    data_dir: Path = Path("var/server")
    database: DatabaseSection = DatabaseSection()
    http: HttpSection = HttpSection()
    mqtt: MqttSection = MqttSection()
    storage: StorageSection = StorageSection()
    keys: KeysSection = KeysSection()


def load_server_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read the server's TOML file (or defaults when None) and apply ``PATROLKIT_SERVER__…`` overrides."""
    text = Path(path).read_text(encoding="utf-8") if path else None
    env = os.environ if environ is None else environ
    return parse_settings(ServerConfig, text, env, ENV_PREFIX, source=str(path or "defaults"))
