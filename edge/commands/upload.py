"""``patrol-edge upload status``: what is left to upload, with a progress bar."""

from __future__ import annotations

import argparse
from typing import Any

from edge.config import load_edge_config
from edge.db.base import make_engine, make_sessionmaker
from edge.upload.uploader import upload_progress


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("upload", help="video upload to the server (status only)")
    sub = parser.add_subparsers(dest="upload_command", required=True)
    status = sub.add_parser("status", help="pending and confirmed segments, with a progress bar")
    status.add_argument("--width", type=int, default=40, help="width of the bar in characters")
    status.set_defaults(handler=show_status)


def progress_bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f} %"


def show_status(args: argparse.Namespace) -> int:
    config = load_edge_config(args.config)
    engine = make_engine(config.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            p = upload_progress(session)
    finally:
        engine.dispose()
    print(progress_bar(p.fraction, args.width))
    print(
        f"pending:   {p.pending_segments} segments, {p.pending_bytes / 1e6:.1f} MB ({p.sent_bytes / 1e6:.1f} MB sent)"
    )
    print(
        f"confirmed: {p.confirmed_segments} segments, {p.confirmed_bytes / 1e6:.1f} MB (local copies deleted)"
    )
    if p.rejected_segments:
        print(f"REJECTED by the server: {p.rejected_segments} segments (kept on the device; see the log)")
    return 0
