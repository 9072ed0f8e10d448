"""Who may play stored footage: the guard of segment content (``/api/video/segments/…/content``). Only a
logged-in account whose role may review gets the bytes (401 without a session, 403 for another role), and
each play is written to the access audit: one row per session and segment per ``audit.PLAY_REPEAT``, with
the protocol it was opened from when the URL names a known one."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select

from core.ascii_digits import parse_digits
from core.manifest import DEVICE_ID_PATTERN
from server.db.base import transaction
from server.db.protocols import Protocol
from server.db.video import VideoSegment
from server.review import audit
from server.review.access import Reviewing
from server.review.auth import client_of, now_of

MAX_PROTOCOL_NUMBER_CHARS = 32


def playback_access(request: Request, reviewer: Reviewing, device_id: str, seq: str) -> None:
    number = parse_digits(seq)
    if not DEVICE_ID_PATTERN.fullmatch(device_id) or number is None or request.method == "HEAD":
        return  # the playback route answers 400 or only the headers, and nothing is recorded
    app = request.app
    with transaction(app.state.sessions) as session:
        stored = session.scalar(
            select(VideoSegment.id).where(
                VideoSegment.device_id == device_id, VideoSegment.seq == number, VideoSegment.state == "stored"
            )
        )
        if stored is None:
            return  # the playback route answers 404
        protocol: str | None = request.query_params.get("protocol")
        if protocol is not None and (
            not 0 < len(protocol) <= MAX_PROTOCOL_NUMBER_CHARS
            or "\x00" in protocol
            or session.get(Protocol, protocol) is None
        ):
            protocol = None
        audit.record_play(
            session, reviewer, now_of(app), device_id, number, protocol, client_of(request),
            f"range {request.headers.get('range', 'all')[:60]}",
        )  # fmt: skip
