"""Long-running parts of the server process (the MQTT ingest workers, the background footage verifier, the
fine lifecycle's scheduler and SMS receipt listener), started by `run` and stopped in reverse."""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from server.config import ServerConfig
from server.ingest.admission import AdmissionSettings
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
            admission=AdmissionSettings(
                enabled=config.mqtt.credit,
                target_s=config.mqtt.credit_target_s,
                grant_max=config.mqtt.credit_grant_max,
            ),
        )
        workers = start_ingest_workers(
            settings, app.state.sessions, signer, count=config.mqtt.workers, metrics=app.state.metrics.ingest
        )
        app.state.ingest = IngestSupervisor(workers).start()
        services.append(app.state.ingest)
    if config.review.verify_interval_s > 0:
        from server.routes.video import service_for
        from server.video.verifier import BackgroundVerifier

        store = service_for(app).store
        verifier = BackgroundVerifier(
            app.state.sessions, store, config.review.verify_interval_s, config.review.verify_batch
        )
        services.append(verifier.start())
    if config.fines.enabled:
        services.extend(start_fines(config, app))
    return services


def start_fines(config: ServerConfig, app: FastAPI) -> list[Service]:
    """The daily run, SMS sender and unpaid-fines list (one thread), and with SMPP the receipt listener."""
    from datetime import UTC, datetime

    from server.fines.daily_run import RunSettings
    from server.fines.notifier import apply_receipt
    from server.fines.runtime import make_gateway, notify_settings, runtime_of
    from server.fines.scheduler import FinesScheduler

    sessions = app.state.sessions
    f = config.fines
    started: list[Service] = []
    if f.sms.gateway == "smpp":
        from server.fines.smpp_gateway import SmppReceiptListener, SmppTarget

        target = SmppTarget.from_url(f.sms.smpp_url, f.sms.smpp_system_type)
        started.append(
            SmppReceiptListener(
                target, lambda r: apply_receipt(sessions, r, datetime.now(UTC)), f.sms.timeout_s
            ).start()
        )
    scheduler = FinesScheduler(
        sessions,
        runtime_of(app).work,
        make_gateway(config),
        run_at=f.run_at,
        timezone=f.timezone,
        every_s=f.sms.send_every_s,
        dataset_every_s=f.unpaid_dataset_every_s,
        dataset_jurisdiction=f.unpaid_dataset_jurisdiction,
        run_settings=RunSettings(batch=f.batch, unmatched_refund_days=f.unmatched_refund_days),
        notify=notify_settings(config),
    )
    started.append(scheduler.start())
    return started
