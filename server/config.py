"""The central server's configuration (one TOML file, env prefix ``PATROLKIT_SERVER``); defaults run the demo."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

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
    # admission by credit (server/ingest/admission.py): devices send what a worker granted them
    credit: bool = True
    credit_target_s: float = Field(0.5, gt=0, le=60)  # arrival-to-ack time each worker's budget aims at
    credit_grant_max: int = Field(2000, ge=1, le=100_000)  # records in one grant, at most
    tls_ca: str | None = None  # with mqtts://: CA of the broker; cert/key = the ingest-svc client certificate
    tls_cert: str | None = None
    tls_key: str | None = None


class S3Section(Section):
    """How to reach S3-compatible object storage when ``storage.url`` is ``s3://bucket[/prefix]``.
    Credentials left empty come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``~/.aws``, an instance role)."""

    endpoint: str | None = None  # e.g. http://127.0.0.1:8333 (SeaweedFS), http://minio:9000; None: AWS
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    part_mib: int = Field(5, ge=5, le=5120)  # multipart part size (S3's minimum is 5 MiB)
    object_lock: Literal["auto", "off", "require"] = "auto"  # auto: when the bucket has Object Lock enabled
    lock_days: int = Field(30, ge=0, le=36500)  # committed segments are locked (compliance) this long; 0: none
    timeout_s: float = Field(30.0, gt=0, le=600)

    @field_validator("endpoint")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v


class StorageSection(Section):
    """Where uploaded video lives: ``url`` empty (the embedded default) keeps it in ``video_dir``;
    ``s3://bucket[/prefix]`` keeps it in S3-compatible object storage (``s3`` says how to reach it)."""

    video_dir: Path = Path("var/server/video")
    max_segment_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    max_concurrent_uploads: int = Field(32, ge=1, le=4096)  # at once; more get 503 busy with Retry-After
    url: str = ""
    s3: S3Section = S3Section()

    @field_validator("url")
    @classmethod
    def _store_url(cls, v: str) -> str:
        import re

        if v and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?", v):
            raise ValueError("expected empty (the video_dir folder) or s3://bucket[/prefix]")
        return v


class ReviewSection(Section):
    """The supervisor workspace: the jurisdiction's time zone (every time on its pages is local, with the
    offset), how often stored footage is verified again, and the limits on files attached to cases."""

    timezone: str = "Asia/Almaty"
    verify_interval_s: float = Field(3600.0, ge=0)  # 0: no background verifier
    verify_batch: int = Field(200, ge=1, le=100_000)  # segments re-checked per round, least recently first
    case_file_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as Asia/Almaty") from exc
        return v


class RetentionSection(Section):
    """How long footage is kept, by category (``server.review.retention``): footage linked to a stop with a
    payment, to a complaint or appeal case, or to an export is kept that many years from the latest time the
    event touched it (the longest wins); footage with no event ``no_event_days`` after it was recorded. A
    case's legal hold keeps footage past all of these until released. ``patrol-server retention run``
    deletes what is due."""

    no_event_days: int = Field(90, ge=1, le=36_500)
    paid_stop_years: int = Field(5, ge=1, le=100)
    case_years: int = Field(5, ge=1, le=100)
    export_years: int = Field(5, ge=1, le=100)
    batch: int = Field(500, ge=1, le=100_000)  # segments judged per transaction


class MetricsSection(Section):
    """Who may scrape ``/metrics`` (``server.routes.health``): with ``token``, any client that sends
    ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials_file: …}``); without one, only
    clients on this host's loopback that came through no proxy."""

    token: str | None = Field(None, min_length=16, max_length=256, pattern=r"^[A-Za-z0-9._~+/=-]+$")


class KeysSection(Section):
    signing_key_file: Path = Path("var/server/server_ed25519.key")  # base64 raw; public half in <file>.pub


class SmsSection(Section):
    """How the fine lifecycle's SMS go out: ``log`` (writes what it would send), ``smpp`` or ``http``."""

    gateway: Literal["log", "smpp", "http"] = "log"
    log_file: Path | None = None  # default <data_dir>/sms.log
    smpp_url: str = "smpp://patrolkit@127.0.0.1:2775"  # smpp://system_id:password@host:port
    smpp_system_type: str = ""
    source_addr: str = "POLICE"
    http_url: str = ""  # POST {"to","text","reference"} -> {"id"}
    http_token: str | None = None
    http_idempotent: bool = True  # the HTTP gateway drops a repeated reference: a cut-off send may be retried
    timeout_s: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(6, ge=1, le=100)
    retry_s: float = Field(60.0, gt=0)
    retry_max_s: float = Field(6 * 3600.0, gt=0)
    send_every_s: float = Field(15.0, gt=0)

    @field_validator("smpp_url")
    @classmethod
    def _smpp(cls, v: str) -> str:
        if not v.startswith("smpp://"):
            raise ValueError("expected smpp://system_id:password@host:port")
        return v


class FinesSection(Section):
    """The fine lifecycle: the daily run, the unpaid-fines dataset and notifications."""

    enabled: bool = True  # patrol-server run starts the daily run and the SMS sender
    run_at: str = "02:00"  # local time of the daily run
    timezone: str = "Asia/Almaty"
    batch: int = Field(2000, ge=1, le=100_000)
    unmatched_refund_days: int = Field(7, ge=0, le=365)
    unpaid_dataset_jurisdiction: Literal["KZ", "GE"] = "KZ"
    unpaid_dataset_every_s: float = Field(6 * 3600.0, gt=0)  # and after each daily run
    sms: SmsSection = SmsSection()

    @field_validator("run_at")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        import re

        m = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])", v)
        if m is None:
            raise ValueError("expected HH:MM (24 h), e.g. 02:00")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class ServerConfig(Section):
    data_dir: Path = Path("var/server")
    database: DatabaseSection = DatabaseSection()
    http: HttpSection = HttpSection()
    mqtt: MqttSection = MqttSection()
    storage: StorageSection = StorageSection()
    keys: KeysSection = KeysSection()
    fines: FinesSection = FinesSection()
    review: ReviewSection = ReviewSection()
    retention: RetentionSection = RetentionSection()
    metrics: MetricsSection = MetricsSection()


def load_server_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read the server's TOML file (or defaults when None) and apply ``PATROLKIT_SERVER__…`` overrides."""
    text = Path(path).read_text(encoding="utf-8") if path else None
    env = os.environ if environ is None else environ
    return parse_settings(ServerConfig, text, env, ENV_PREFIX, source=str(path or "defaults"))
