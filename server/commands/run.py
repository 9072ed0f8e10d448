"""`patrol-server run` (the whole server) and `patrol-server db upgrade|downgrade`."""

from __future__ import annotations

import argparse
import logging
import secrets
from typing import Any

from core.process_stop import StopSignals, serve_until_stopped
from core.structured_log import log_event
from server.config import load_server_config

log = logging.getLogger("server")


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="run the server: database migrations, broker (embedded), ingest, HTTP API"
    )
    run.set_defaults(handler=cmd_run)
    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("--to", default=None, help="target revision (default: heads / base)")
    db.set_defaults(handler=cmd_db)


def cmd_db(args: argparse.Namespace) -> int:
    from server.db.migrate import downgrade, upgrade

    cfg = load_server_config(args.config)
    if args.action == "upgrade":
        upgrade(cfg.database.url, args.to or "heads")
    else:
        downgrade(cfg.database.url, args.to or "base")
    log_event(log, f"db.{args.action}", url=cfg.database.url.split("@")[-1])
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The server process. SIGTERM or SIGINT stops the HTTP server, the ingest workers and the embedded broker,
    in that order, and logs ``server.stopped``."""
    import uvicorn

    from server.app import create_app
    from server.broker import start_embedded
    from server.db.migrate import upgrade
    from server.services import Service, start_services

    stop = StopSignals().install()
    cfg = load_server_config(args.config)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(cfg.database.url)
    if stop.requested.is_set():  # asked to stop while migrating: nothing was started
        log_event(log, "server.stopped", signal=stop.signal_name)
        return 0
    stop_broker = None
    broker_thread = None
    services: list[Service] = []
    served = False
    if cfg.mqtt.embedded and cfg.mqtt.password is None:  # the ingest account: a secret of this run only
        cfg = cfg.model_copy(
            update={"mqtt": cfg.mqtt.model_copy(update={"password": secrets.token_urlsafe(24)})}
        )
    try:
        app = create_app(cfg)
        if cfg.mqtt.embedded:
            broker_thread, stop_broker = start_embedded(cfg, app.state.sessions)
        services = start_services(cfg, app)
        log_event(log, "server.started", http=f"http://{cfg.http.host}:{cfg.http.port}", mqtt=cfg.mqtt.url)
        server = uvicorn.Server(
            uvicorn.Config(app, host=cfg.http.host, port=cfg.http.port, log_level="warning")
        )
        served = serve_until_stopped(server, stop)
    finally:
        for service in reversed(services):
            service.stop()
        if stop_broker is not None and broker_thread is not None:
            stop_broker()
            broker_thread.join(5)
        log_event(log, "server.stopped", signal=stop.signal_name)
    return 0 if served else 1
