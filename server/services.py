"""Long-running parts of the server process (the MQTT ingest workers), started by `run` and stopped in reverse."""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from server.config import ServerConfig
from server.ingest.supervisor import IngestSupervisor
from server.ingest.worker import IngestSettings, start_ingest_workers
from server.keys import load_server_signer


class Service(Protocol):
    def stop(self) -> None: ...


def start_services(config: ServerConfig, app: FastAPI) -> list[Service]:
    """Start the ingest workers on the app's database under a watchdog (``app.state.ingest``, which
    ``/healthz`` reads); the caller stops them in reverse order."""
    services: list[Service] = []
    if config.mqtt.workers:
        signer = load_server_signer(config.keys.signing_key_file)
        settings = IngestSettings(
            mqtt_url=config.mqtt.url,
            client_id="ingest",
            username=config.mqtt.username,
            password=config.mqtt.password,
            shared_group=None if config.mqtt.embedded else config.mqtt.shared_group,
            gap_timeout_s=config.mqtt.gap_timeout_s,
            resend_interval_s=config.mqtt.resend_interval_s,
            tls_ca=config.mqtt.tls_ca,
            tls_cert=config.mqtt.tls_cert,
            tls_key=config.mqtt.tls_key,
            stall_s=config.mqtt.stall_s,
        )
        workers = start_ingest_workers(settings, app.state.sessions, signer, count=config.mqtt.workers)
        app.state.ingest = IngestSupervisor(workers).start()
        services.append(app.state.ingest)
    return services
