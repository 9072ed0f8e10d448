"""Payment attempts (``sync_payment_attempt``: the latest state of each, declined and aborted ones included)
and settlements of attempts in doubt (``sync_payment_settlement``, append-only through triggers like the
access audit: a settlement is evidence of how money was accounted for).

Revision ID: s0014_payment_attempts
Revises: s0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0014_payment_attempts"
down_revision = "s0013"
branch_labels = None
depends_on = None

_SETTLEMENT = "sync_payment_settlement"


def upgrade() -> None:
    op.create_table(
        "sync_payment_attempt",
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("officer_badge", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("masked_pan", sa.String(length=32), nullable=False),
        sa.Column("card_scheme", sa.String(length=64), nullable=False),
        sa.Column("name_check", sa.String(length=16), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("result_text", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trace_no", sa.Integer(), nullable=True),
        sa.Column("receipt_no", sa.Integer(), nullable=True),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("attempt_id"),
    )
    op.create_index("ix_sync_payment_attempt_device_id", "sync_payment_attempt", ["device_id"])
    op.create_index("ix_sync_payment_attempt_protocol_number", "sync_payment_attempt", ["protocol_number"])
    op.create_table(
        _SETTLEMENT,
        sa.Column("settlement_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("evidence_hex", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("settlement_id"),
    )
    op.create_index("ix_sync_payment_settlement_device_id", _SETTLEMENT, ["device_id"])
    op.create_index("ix_sync_payment_settlement_attempt_id", _SETTLEMENT, ["attempt_id"])
    op.create_index("ix_sync_payment_settlement_protocol_number", _SETTLEMENT, ["protocol_number"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION payment_settlement_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_SETTLEMENT} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER payment_settlement_append_only BEFORE UPDATE OR DELETE ON {_SETTLEMENT} "
            "FOR EACH ROW EXECUTE FUNCTION payment_settlement_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER payment_settlement_no_{event.lower()} BEFORE {event} ON {_SETTLEMENT} "
                f"BEGIN SELECT RAISE(ABORT, '{_SETTLEMENT} is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS payment_settlement_append_only ON {_SETTLEMENT}")
        op.execute("DROP FUNCTION IF EXISTS payment_settlement_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS payment_settlement_no_{event}")
    op.drop_index("ix_sync_payment_settlement_protocol_number", table_name=_SETTLEMENT)
    op.drop_index("ix_sync_payment_settlement_attempt_id", table_name=_SETTLEMENT)
    op.drop_index("ix_sync_payment_settlement_device_id", table_name=_SETTLEMENT)
    op.drop_table(_SETTLEMENT)
    op.drop_index("ix_sync_payment_attempt_protocol_number", table_name="sync_payment_attempt")
    op.drop_index("ix_sync_payment_attempt_device_id", table_name="sync_payment_attempt")
    op.drop_table("sync_payment_attempt")
