"""The access audit as a hash chain: every row carries ``prev_hash`` (the ``row_hash`` of the row before it,
zeros for the first) and ``row_hash`` = SHA-256 of the row's canonical JSON, ``prev_hash`` included. Changing,
removing or inserting a row anywhere breaks every later link, and ``verify_chain`` names the first row that
does not fit.

Writers append through ``append``: it first locks the chain's head row (``review_audit_head``), so that two
writers never chain to the same row; the row's id is the head's next id, given under that lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.db.supervisors import AccessAudit, AuditHead

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "id", "at", "supervisor_id", "supervisor_login", "action", "protocol_number", "device_id", "seq",
    "session_ref", "client", "detail",
)  # fmt: skip
VERIFY_BATCH = 2000


def utc_text(at: datetime) -> str:
    """The one text form of a time in the chain (microseconds, ``Z``)."""
    if at.tzinfo is None:
        raise ValueError("audit times are aware UTC times")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_digest(fields: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 hex of the canonical JSON of ``fields`` (``CHAINED_FIELDS``) and ``prev_hash``."""
    body: dict[str, Any] = {name: fields[name] for name in CHAINED_FIELDS}
    body["at"] = utc_text(fields["at"])
    body["prev_hash"] = prev_hash
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append(session: Session, fields: dict[str, Any]) -> AccessAudit:
    """Add one audit row (``fields`` = every chained field but ``id``) at the end of the chain, in the
    caller's transaction. The head row is locked first (an UPDATE: a row lock on PostgreSQL, the write lock
    on SQLite) and stays locked until the caller commits."""
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_id=AuditHead.last_id))
    head = session.execute(select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    row_id = int(head.last_id) + 1
    values = {**fields, "id": row_id}
    digest = row_digest(values, head.last_hash)
    row = AccessAudit(**values, prev_hash=head.last_hash, row_hash=digest)
    session.add(row)
    session.flush()
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_id=row_id, last_hash=digest))
    return row


@dataclass(frozen=True)
class ChainReport:
    rows: int
    intact: bool
    broken_at: int | None = None  # id of the first row that does not fit
    reason: str = ""
    last_hash: str = GENESIS

    def text(self) -> str:
        """The verdict; when intact, the last row and its hash: noted elsewhere (a ticket, an export), they
        show later whether the chain was cut back at its end, which no check of the table alone can."""
        if self.intact:
            return f"audit chain intact: {self.rows} rows; last row {self.rows}, hash {self.last_hash}"
        return f"audit chain BROKEN at row {self.broken_at}: {self.reason} ({self.rows} rows checked before it)"


def _fields(row: AccessAudit) -> dict[str, Any]:
    return {name: getattr(row, name) for name in CHAINED_FIELDS}


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain from its first row: ids without holes, each ``prev_hash`` the row before's hash, each
    ``row_hash`` recomputed, and the head naming the last row."""
    expected_prev, expected_id, count = GENESIS, 1, 0
    last_id = 0
    while True:
        rows = list(
            session.scalars(
                select(AccessAudit).where(AccessAudit.id > last_id).order_by(AccessAudit.id).limit(VERIFY_BATCH)
            )
        )
        if not rows:
            break
        for row in rows:
            if row.id != expected_id:
                return ChainReport(count, False, row.id, f"row {expected_id} is missing")
            if row.prev_hash != expected_prev:
                return ChainReport(count, False, row.id, "prev_hash is not the hash of the row before")
            if row_digest(_fields(row), row.prev_hash) != row.row_hash:
                return ChainReport(count, False, row.id, "row_hash does not match the row's content")
            expected_prev, expected_id, count = row.row_hash, row.id + 1, count + 1
        last_id = rows[-1].id
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is None:
        return ChainReport(count, False, None, "the chain head row is missing")
    if (head.last_id, head.last_hash) != (expected_id - 1, expected_prev):
        return ChainReport(
            count, False, head.last_id, f"the head names row {head.last_id}, the chain ends at {expected_id - 1}"
        )
    return ChainReport(count, True, last_hash=expected_prev)
