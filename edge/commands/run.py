"""`patrol-edge run` (the device process) and `patrol-edge db upgrade|downgrade`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from core.process_stop import StopSignals, serve_until_stopped
from core.structured_log import log_event
from edge.config import EdgeConfig, load_edge_config
from edge.folder_lock import FolderLock, FolderLocked

if TYPE_CHECKING:
    from edge.services import Service

LOCK_FILE = "patrol-edge.lock"

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
    """The device process. SIGTERM or SIGINT stops the HTTP server, then every service in reverse order (the
    recorder closes its segment), and logs ``device.stopped``. A second process on the same data folder refuses to
    start, naming the pid of the first."""
    stop = StopSignals().install()
    cfg = load_edge_config(args.config)
    try:
        lock = FolderLock(cfg.device.data_dir, LOCK_FILE, "patrol-edge run").acquire()
    except FolderLocked as exc:
        print(f"patrol-edge run: {exc}; stop it first", file=sys.stderr, flush=True)
        log_event(log, "device.refused", reason="data folder locked", holder=exc.holder)
        return 1
    try:
        return _run_device(cfg, stop)
    finally:
        lock.release()


def _run_device(cfg: EdgeConfig, stop: StopSignals) -> int:
    import uvicorn

    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade
    from edge.http import create_device_app
    from edge.identity import load_identity
    from edge.services import start_services, sync_sender

    upgrade(cfg.database_url)
    identity = load_identity(cfg.device.id, cfg.key_file, create=True)
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    if stop.requested.is_set():  # asked to stop while migrating: nothing was started
        log_event(log, "device.stopped", device=identity.device_id, signal=stop.signal_name)
        return 0
    services: list[Service] = []
    served = False
    try:
        services = start_services(cfg, identity, sessions)
        app = create_device_app(cfg, identity, sessions, sync_sender(services))
        log_event(log, "device.started", device=identity.device_id, kid=identity.kid, http=cfg.http.port)
        server = uvicorn.Server(
            uvicorn.Config(app, host=cfg.http.host, port=cfg.http.port, log_level="warning")
        )
        served = serve_until_stopped(server, stop)
    finally:
        for service in reversed(services):
            service.stop()
        log_event(log, "device.stopped", device=identity.device_id, signal=stop.signal_name)
    return 0 if served else 1
