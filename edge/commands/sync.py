"""``patrol-edge sync status`` (outbox and dataset state) and ``patrol-edge sync run`` (the sender alone)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from pathlib import Path

from core.sync.signing import KeyRing, Signer, Verifier


def _sessions(db_url: str):  # type: ignore[no-untyped-def]
    from edge.db.base import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(db_url))


def _status(args: argparse.Namespace) -> int:
    from edge.sync.datasets import active_versions
    from edge.sync.outbox import stats

    db_url = args.db or _config_db(args)
    with _sessions(db_url)() as session:
        st = stats(session)
        versions = active_versions(session)
    print(
        json.dumps(
            {
                "pending": st.pending,
                "unsealed": st.unsealed,
                "acked": st.acked,
                "rejected": st.rejected,
                "max_seq": st.max_seq,
                "oldest_pending_at": st.oldest_pending_at.isoformat() if st.oldest_pending_at else None,
                "datasets": versions,
            }
        )
    )
    return 0


def _config_db(args: argparse.Namespace) -> str:
    from edge.config import load_edge_config

    return str(load_edge_config(args.config).database_url)


def _run(args: argparse.Namespace) -> int:
    from edge.db.migrate import upgrade
    from edge.sync.sender import SenderSettings, SyncSender

    upgrade(args.db)
    signer = Signer.from_b64(Path(args.key_file).read_text())
    keys = KeyRing([Verifier.from_b64(Path(p).read_text()) for p in args.server_key])
    settings = SenderSettings(
        mqtt_url=args.mqtt_url,
        device_id=args.device_id,
        window=args.window,
        batch=args.batch,
        ack_timeout_s=args.ack_timeout,
    )
    sender = SyncSender(settings, _sessions(args.db), signer, keys)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    sender.start()
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    sender.stop()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sync", help="MQTT sync: outbox status, or run the sender alone")
    sub = parser.add_subparsers(dest="sync_command", required=True)
    status = sub.add_parser("status", help="outbox counts and dataset versions in use, as JSON")
    status.add_argument("--db", default=None, help="device database URL (default: from the configuration)")
    status.set_defaults(handler=_status)
    run = sub.add_parser("run", help="run only the sync sender (tests, debugging)")
    run.add_argument("--db", required=True)
    run.add_argument("--device-id", required=True)
    run.add_argument("--key-file", required=True, help="device private key, base64 raw Ed25519")
    run.add_argument("--server-key", action="append", required=True, help="server public key file(s), base64")
    run.add_argument("--mqtt-url", required=True)
    run.add_argument("--window", type=int, default=200)
    run.add_argument("--batch", type=int, default=50)
    run.add_argument("--ack-timeout", type=float, default=30.0)
    run.set_defaults(handler=_run)


def main() -> int:
    parser = argparse.ArgumentParser(prog="patrol-edge")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args()
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
