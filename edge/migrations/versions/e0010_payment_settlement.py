"""Payment attempts as a state machine that can be settled: ``payment_attempt`` gains ``revision`` (its synced
record's) and ``authorised_at``; ``payment_evidence`` keeps what the terminal said about attempts in doubt;
``payment_settlement`` records how each was settled. Attempts left "needs_review" become "in_doubt".

Revision ID: e0010
Revises: e0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0010"
down_revision = "e0009"
branch_labels = None
depends_on = "e0002"  # the payment branch: payment_attempt must exist


def upgrade() -> None:
    with op.batch_alter_table("payment_attempt") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("authorised_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_payment_attempt_authorised_at", ["authorised_at"])
    op.execute("UPDATE payment_attempt SET state = 'in_doubt' WHERE state = 'needs_review'")
    op.create_table(
        "payment_evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("attempt_id", sa.String(length=36), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("raw_hex", sa.Text(), nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=False),
        sa.Column("total_minor", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("receipt_from", sa.Integer(), nullable=True),
        sa.Column("receipt_to", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_evidence_at", "payment_evidence", ["at"])
    op.create_index("ix_payment_evidence_attempt_id", "payment_evidence", ["attempt_id"])
    op.create_table(
        "payment_settlement",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("attempt_id", sa.String(length=36), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("evidence_hex", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["payment_attempt.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("attempt_id"),
    )
    op.create_index("ix_payment_settlement_protocol_number", "payment_settlement", ["protocol_number"])


def downgrade() -> None:
    op.drop_index("ix_payment_settlement_protocol_number", table_name="payment_settlement")
    op.drop_table("payment_settlement")
    op.drop_index("ix_payment_evidence_attempt_id", table_name="payment_evidence")
    op.drop_index("ix_payment_evidence_at", table_name="payment_evidence")
    op.drop_table("payment_evidence")
    op.execute("UPDATE payment_attempt SET state = 'failed' WHERE state IN ('aborted', 'abandoned')")
    with op.batch_alter_table("payment_attempt") as batch:
        batch.drop_index("ix_payment_attempt_authorised_at")
        batch.drop_column("authorised_at")
        batch.drop_column("revision")
