"""Long-running parts of the device process, each with one job: the recorder's watchdog, the docked uploader
and the sync sender. Started by `patrol-edge run`, stopped in reverse order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session, sessionmaker

from core.structured_log import log_event
from core.sync.signing import KeyRing, Signer, Verifier
from edge.config import EdgeConfig
from edge.identity import DeviceIdentity

if TYPE_CHECKING:
    from edge.sync.sender import SyncSender

log = logging.getLogger(__name__)


class Service(Protocol):
    def stop(self) -> None: ...


class ThreadService:
    """Runs ``target(stop_event)`` on a named thread until ``stop()``."""

    def __init__(self, name: str, target: Callable[[threading.Event], None]) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(target,), name=name, daemon=True)
        self._thread.start()

    def _run(self, target: Callable[[threading.Event], None]) -> None:
        try:
            target(self._stop)
        except Exception:  # a service that dies is logged loudly; the others keep running
            log.exception("service.crashed", extra={"event": "service.crashed", "service": self.name})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _recorder(config: EdgeConfig) -> ThreadService:
    from edge.recorder.supervisor import RecorderSupervisor, recorder_command

    directory = config.recording_dir
    directory.mkdir(parents=True, exist_ok=True)
    cam = config.camera
    rec = config.recorder
    args = [
        "--dir", str(directory), "--camera", cam.source, "--device-id", config.device.id,
        "--key-file", str(config.key_file), "--width", str(cam.width), "--height", str(cam.height),
        "--fps", str(cam.fps), "--segment-seconds", str(cam.segment_seconds), "--encoder", cam.encoder,
        "--badge", rec.badge, "--database-url", config.database_url,
        "--warn-hours", str(rec.warn_hours), "--reserve-mb", str(rec.reserve_mb),
    ]  # fmt: skip
    if config.gps.url:
        args += ["--gps", config.gps.url]
    supervisor = RecorderSupervisor(recorder_command(args), directory)
    return ThreadService("recorder-watchdog", supervisor.run)


def _uploader(config: EdgeConfig, identity: DeviceIdentity, sessions: sessionmaker[Session]) -> ThreadService:
    from edge.upload.client import UploadClient
    from edge.upload.service import DockedUploadService
    from edge.upload.uploader import Uploader

    uploader = Uploader(sessions, config.recording_dir, UploadClient(config.server.url, identity))
    service = DockedUploadService(
        uploader, config.power.sysfs, config.upload.poll_seconds, config.upload.retry_seconds
    )
    return ThreadService("uploader", service.run)


class _SenderService:
    def __init__(self, config: EdgeConfig, identity: DeviceIdentity, sessions: sessionmaker[Session]) -> None:
        from edge.sync.sender import SenderSettings, SyncSender

        m = config.mqtt
        keys = KeyRing(
            [Verifier.from_b64(p.read_text(encoding="ascii")) for p in config.server.public_key_files]
        )
        settings = SenderSettings(
            mqtt_url=m.url,
            device_id=config.device.id,
            username=m.username,
            password=m.password,
            window=m.window,
            batch=m.batch,
            ack_timeout_s=m.ack_timeout_s,
            ack_timeout_max_s=m.ack_timeout_max_s,
            backoff_max_s=m.backoff_max_s,
            tls_ca=m.tls_ca,
            tls_cert=m.tls_cert,
            tls_key=m.tls_key,
        )
        signer = Signer(identity.private_key)
        self.sender = SyncSender(settings, sessions, signer, keys)
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()


def _status_reporter(config: EdgeConfig, sessions: sessionmaker[Session]) -> Service:
    from importlib.metadata import version

    from edge.sync.status import (
        DeviceStatusReporter,
        StatusSources,
        power_source,
        recorder_source,
        storage_source,
    )

    config.recording_dir.mkdir(parents=True, exist_ok=True)
    sources = StatusSources(
        app_version=version("patrolkit"),
        battery=power_source(config.power.sysfs),
        storage=storage_source(config.recording_dir),
        recorder_state=recorder_source(config.recording_dir),
    )
    return DeviceStatusReporter(sessions, sources, interval_s=config.mqtt.status_interval_s).start()


def sync_sender(services: list[Service]) -> SyncSender | None:
    """The sync sender among started ``services`` (None when sync is off), for the status page."""
    return next((s.sender for s in services if isinstance(s, _SenderService)), None)


def start_services(
    config: EdgeConfig, identity: DeviceIdentity, sessions: sessionmaker[Session]
) -> list[Service]:
    """Start every enabled background service of the device; the caller stops them in reverse order."""
    services: list[Service] = []
    if config.mqtt.enabled:
        if not config.server.public_key_files:
            log_event(
                log, "sync.disabled", reason="no server public key configured (server.public_key_files)"
            )
        else:
            services.append(_SenderService(config, identity, sessions))
        services.append(_status_reporter(config, sessions))
    if config.recorder.enabled:
        services.append(_recorder(config))
    if config.upload.enabled:
        services.append(_uploader(config, identity, sessions))
    log_event(log, "device.services", started=[type(s).__name__ for s in services])
    return services
