"""`patrol-edge run` (the device process) and `patrol-edge db upgrade|downgrade`."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from core.structured_log import log_event
from edge.config import load_edge_config

log = logging.getLogger("edge")


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run the device: database, recorder, uploader, sync, local HTTP")
    run.set_defaults(handler=cmd_run)
    db = sub.add_parser("db", help="device database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("--to", default=None, help="target revision (default: heads / base)")
    db.set_defaults(handler=cmd_db)


def cmd_db(args: argparse.Namespace) -> int:
    from edge.db.migrate import downgrade, upgrade

    cfg = load_edge_config(args.config)
    if args.action == "upgrade":
        upgrade(cfg.database_url, args.to or "heads")
    else:
        downgrade(cfg.database_url, args.to or "base")
    log_event(log, f"db.{args.action}", url=cfg.database_url)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade
    from edge.http import create_device_app
    from edge.identity import load_identity
    from edge.services import start_services, sync_sender

    cfg = load_edge_config(args.config)
    cfg.device.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(cfg.database_url)
    identity = load_identity(cfg.device.id, cfg.key_file, create=True)
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    services = start_services(cfg, identity, sessions)
    app = create_device_app(cfg, identity, sessions, sync_sender(services))
    log_event(log, "device.started", device=identity.device_id, kid=identity.kid, http=cfg.http.port)
    try:
        uvicorn.run(app, host=cfg.http.host, port=cfg.http.port, log_level="warning")
    finally:
        for service in reversed(services):
            service.stop()
        log_event(log, "device.stopped", device=identity.device_id)
    return 0
