"""The patrol device's configuration (one TOML file, env prefix ``PATROLKIT_EDGE``); defaults run the demo."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.settings import parse_settings

ENV_PREFIX = "PATROLKIT_EDGE"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceSection(Section):
    id: str = Field("DEV-0001", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    data_dir: Path = Path("var/device")
    key_file: Path | None = None  # default: <data_dir>/device_ed25519.pem
    unit: str = "ДПС УП г. Астана"
    jurisdiction: str = Field("KZ", pattern=r"^[A-Z]{2}$")
    timezone: str = "Asia/Almaty"  # local calendar dates (discount window) are counted in this zone

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {v!r}") from exc
        return v


class DatabaseSection(Section):
    url: str | None = None  # default: sqlite:///<data_dir>/device.db

    @field_validator("url")
    @classmethod
    def _sqlite_only(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("sqlite"):
            raise ValueError("the device database is SQLite: expected a sqlite:/// URL")
        return v


class TerminalSection(Section):
    url: str = "socket://127.0.0.1:20007"  # serial:///dev/ttyUSB0, /dev/ttyUSB0, a pty path or socket://
    baudrate: int = Field(9600, description="9600 or 115200")
    password: str = Field("000000", pattern=r"^\d{6}$")
    currency: int = 398

    @field_validator("baudrate")
    @classmethod
    def _baud(cls, v: int) -> int:
        if v not in (9600, 19200, 38400, 57600, 115200):
            raise ValueError("expected one of 9600, 19200, 38400, 57600, 115200")
        return v


class PrinterSection(Section):
    url: str = (
        "tcp://127.0.0.1:9100"  # serial:///dev/ttyS0, usb://04b8:0e15, tcp://host:9100, file:///dev/usb/lp0
    )
    profile: str = "kz1048-80mm"


class CameraSection(Section):
    source: str = "synthetic://"  # a V4L2 index (0), a device path, a file or a URL
    width: int = Field(1280, ge=64, le=3840)
    height: int = Field(720, ge=64, le=2160)
    fps: int = Field(30, ge=1, le=120)
    segment_seconds: int = Field(60, ge=2, le=3600)
    encoder: str = "libx264"


class RecorderSection(Section):
    enabled: bool = True
    dir: Path | None = None  # default: <data_dir>/video (persistent flash, never tmpfs)
    badge: str = ""  # burnt into the overlay; the officer on shift
    warn_hours: float = Field(2.0, gt=0)
    reserve_mb: int = Field(64, ge=1)


class UploadSection(Section):
    enabled: bool = True
    poll_seconds: float = Field(2.0, gt=0)
    retry_seconds: float = Field(30.0, gt=0)


class PowerSection(Section):
    sysfs: Path = Path("/sys/class/power_supply")


class GpsSection(Section):
    url: str | None = None  # serial:///dev/ttyACM0 or a pty path; None = no GPS
    stop_max_age_s: float = Field(30.0, gt=0)  # oldest recorder fix a new protocol may take its position from


class MqttSection(Section):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    topic_root: str = "pd/v1"
    window: int = Field(1000, ge=1, le=10000)
    batch: int = Field(100, ge=1, le=1000)
    status_interval_s: float = Field(300.0, gt=0)
    ack_timeout_s: float = Field(30.0, gt=0)  # first and least resend timeout; adapts to acks' round trips
    ack_timeout_max_s: float = Field(300.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    enabled: bool = True
    tls_ca: str | None = None  # with mqtts://: the broker's CA; cert/key = this device's client certificate
    tls_cert: str | None = None
    tls_key: str | None = None


class ServerSection(Section):
    url: str = "http://127.0.0.1:8000"
    public_key_files: list[Path] = Field(default_factory=list)


class HttpSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(8001, ge=0, le=65535)


class OfficerSection(Section):
    """The officer app (local web UI) served by ``patrol-edge run`` on ``[http]``."""

    enabled: bool = True
    idle_lock_s: float = Field(120.0, ge=10, le=3600)  # the app locks after this long without a tap
    pin_max_failures: int = Field(5, ge=1, le=20)  # wrong PINs in a row that lock the badge …
    pin_lock_minutes: float = Field(15.0, gt=0, le=1440)  # … for this long
    session_hours: float = Field(12.0, gt=0, le=24)  # a sign-in lasts at most a shift
    default_language: str = Field("ru", pattern=r"^(kk|ru|en)$")  # for officers who chose none
    card_timeout_s: int = Field(60, ge=10, le=255)  # Read Card: how long the terminal waits for the card
    status_poll_s: float = Field(15.0, ge=2, le=600)  # terminal and printer asked while a screen is open
    recorder_stale_s: float = Field(10.0, gt=0)  # a recorder status older than this means it is not running


class RulesSection(Section):
    holidays: list[date] = Field(default_factory=list)


class EdgeConfig(Section):
    device: DeviceSection = DeviceSection()
    database: DatabaseSection = DatabaseSection()
    terminal: TerminalSection = TerminalSection()
    printer: PrinterSection = PrinterSection()
    camera: CameraSection = CameraSection()
    recorder: RecorderSection = RecorderSection()
    upload: UploadSection = UploadSection()
    power: PowerSection = PowerSection()
    gps: GpsSection = GpsSection()
    mqtt: MqttSection = MqttSection()
    server: ServerSection = ServerSection()
    http: HttpSection = HttpSection()
    officer: OfficerSection = OfficerSection()
    rules: RulesSection = RulesSection()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.device.data_dir / 'device.db'}"

    @property
    def recording_dir(self) -> Path:
        return self.recorder.dir or self.device.data_dir / "video"

    @property
    def key_file(self) -> Path:
        return self.device.key_file or self.device.data_dir / "device_ed25519.pem"


def load_edge_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read the device's TOML file (or defaults when None) and apply ``PATROLKIT_EDGE__…`` overrides."""
    text = Path(path).read_text(encoding="utf-8") if path else None
    env = os.environ if environ is None else environ
    return parse_settings(EdgeConfig, text, env, ENV_PREFIX, source=str(path or "defaults"))
