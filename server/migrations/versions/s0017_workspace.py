"""workspace: a role on every account, and the access audit as a hash chain

- ``supervisor.role``: supervisor (review and cases), auditor (read-only, plus the audit), admin (accounts and
  devices); accounts from before are supervisors.
- ``review_access_audit`` gains ``prev_hash`` and ``row_hash`` (each row carries the hash of the one before,
  ``server.review.audit_chain``); rows from before are chained here, in id order. ``supervisor_id`` may be
  empty for actions of the command line (an evidence export by an operator), whose actor is in
  ``supervisor_login``.
- ``review_audit_head``: one row naming the chain's last id and hash; every new audit row locks it first, so
  concurrent writers queue instead of forking the chain.

Revision ID: s0017_workspace
Revises: s0014_payment_attempts
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "s0017_workspace"
down_revision = "s0016_fines"
branch_labels = None
depends_on = None

_AUDIT = "review_access_audit"
GENESIS = "0" * 64


def _drop_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS review_audit_append_only ON {_AUDIT}")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS review_audit_no_{event}")


def _add_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER review_audit_append_only BEFORE UPDATE OR DELETE ON {_AUDIT} "
            "FOR EACH ROW EXECUTE FUNCTION review_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER review_audit_no_{event.lower()} BEFORE {event} ON {_AUDIT} "
                "BEGIN SELECT RAISE(ABORT, 'review_access_audit is append-only'); END"
            )


def _utc_text(value: object) -> str:
    """The same text ``server.review.audit_chain.row_digest`` makes of a stored time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(row: sa.Row[Any], prev_hash: str) -> str:
    m = row._mapping
    body = {
        "id": int(m["id"]),
        "at": _utc_text(m["at"]),
        "supervisor_id": None if m["supervisor_id"] is None else int(m["supervisor_id"]),
        "supervisor_login": m["supervisor_login"],
        "action": m["action"],
        "protocol_number": m["protocol_number"],
        "device_id": m["device_id"],
        "seq": None if m["seq"] is None else int(m["seq"]),
        "session_ref": m["session_ref"],
        "client": m["client"],
        "detail": m["detail"],
        "prev_hash": prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("supervisor") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="supervisor")
        )
    _drop_append_only()
    with op.batch_alter_table(_AUDIT) as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
        batch.alter_column("supervisor_id", existing_type=sa.Integer(), nullable=True)
    op.create_table(
        "review_audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    bind = op.get_bind()
    table = sa.table(
        _AUDIT,
        *(sa.column(c) for c in ("id", "at", "supervisor_id", "supervisor_login", "action", "protocol_number",
                                 "device_id", "seq", "session_ref", "client", "detail", "prev_hash", "row_hash")),
    )  # fmt: skip
    prev, last_id = GENESIS, 0
    for row in bind.execute(sa.select(table).order_by(table.c.id)).all():
        digest = _digest(row, prev)
        bind.execute(
            table.update().where(table.c.id == row.id).values(prev_hash=prev, row_hash=digest)
        )
        prev, last_id = digest, int(row.id)
    bind.execute(sa.text("INSERT INTO review_audit_head (id, last_id, last_hash) VALUES (1, :i, :h)"),
                 {"i": last_id, "h": prev})  # fmt: skip
    with op.batch_alter_table(_AUDIT) as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("row_hash", existing_type=sa.String(length=64), nullable=False)
    _add_append_only()


def downgrade() -> None:
    _drop_append_only()
    op.drop_table("review_audit_head")
    with op.batch_alter_table(_AUDIT) as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
    _add_append_only()
    with op.batch_alter_table("supervisor") as batch:
        batch.drop_column("role")
