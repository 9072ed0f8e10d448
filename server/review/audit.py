"""The access audit (chain of custody): every protocol page view, footage play, search, verification, export
and change (cases, accounts), by whom and when. Rows are only ever added (the migrations' triggers refuse
UPDATE and DELETE), each chained to the one before (``server.review.audit_chain``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from server.db.supervisors import AccessAudit
from server.review.audit_chain import append

PLAY_REPEAT = timedelta(minutes=10)  # range requests of one session for one segment within this are one play
TRAIL_ROWS = 500


class Actor(Protocol):
    """Who did it: a logged-in account (``server.review.auth.Reviewer``) or an operator at the command line."""

    @property
    def supervisor_id(self) -> int | None: ...
    @property
    def login(self) -> str: ...
    @property
    def session_ref(self) -> str: ...


@dataclass(frozen=True)
class Operator:
    """An operator at the server's command line (no account): ``login`` names the OS user."""

    login: str
    supervisor_id: int | None = None
    session_ref: str = "cli"


def record(
    session: Session,
    reviewer: Actor,
    action: str,
    at: datetime,
    *,
    protocol_number: str | None = None,
    device_id: str | None = None,
    seq: int | None = None,
    client: str = "",
    detail: str = "",
) -> None:
    append(
        session,
        {
            "at": at,
            "supervisor_id": reviewer.supervisor_id,
            "supervisor_login": reviewer.login[:64],
            "action": action,
            "protocol_number": protocol_number,
            "device_id": device_id,
            "seq": seq,
            "session_ref": reviewer.session_ref[:16],
            "client": client[:64],
            "detail": detail[:1000],
        },
    )


def record_play(
    session: Session,
    reviewer: Actor,
    at: datetime,
    device_id: str,
    seq: int,
    protocol_number: str | None,
    client: str,
    detail: str,
) -> bool:
    """One ``footage.play`` row per session and segment per ``PLAY_REPEAT`` (a video element fetches a segment
    in many range requests); returns whether a row was added."""
    recent = session.scalar(
        select(AccessAudit.id)
        .where(
            AccessAudit.action == "footage.play",
            AccessAudit.session_ref == reviewer.session_ref,
            AccessAudit.device_id == device_id,
            AccessAudit.seq == seq,
            AccessAudit.at > at - PLAY_REPEAT,
        )
        .limit(1)
    )
    if recent is not None:
        return False
    record(
        session,
        reviewer,
        "footage.play",
        at,
        protocol_number=protocol_number,
        device_id=device_id,
        seq=seq,
        client=client,
        detail=detail,
    )
    return True


def trail(session: Session, protocol_number: str, segments: Iterable[tuple[str, int]]) -> list[AccessAudit]:
    """Audit rows of a protocol, oldest first (the newest ``TRAIL_ROWS``): views of its page and plays of its
    footage (also plays opened from elsewhere)."""
    by_device: dict[str, list[int]] = {}
    for device_id, seq in segments:
        by_device.setdefault(device_id, []).append(seq)
    conditions = [AccessAudit.protocol_number == protocol_number]
    conditions += [
        and_(AccessAudit.device_id == device, AccessAudit.seq.in_(seqs)) for device, seqs in by_device.items()
    ]
    newest = session.scalars(
        select(AccessAudit)
        .where(or_(*conditions))
        .order_by(AccessAudit.at.desc(), AccessAudit.id.desc())
        .limit(TRAIL_ROWS)
    )
    return list(reversed(list(newest)))
