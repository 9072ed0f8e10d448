"""receipts: receipt_job (one row per attempt to print one copy)

Revision ID: e0003
Revises: e0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0003"
down_revision = "e0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipt_job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("copy_no", sa.Integer(), nullable=False),
        sa.Column("duplicate_no", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("printer_status", sa.Text(), nullable=False),
        sa.Column("bytes_sent", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payment.id"], name="fk_receipt_job_payment"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id", "copy_no", "duplicate_no", name="uq_receipt_job_attempt"),
    )
    with op.batch_alter_table("receipt_job", schema=None) as batch_op:
        batch_op.create_index("ix_receipt_job_payment_id", ["payment_id"], unique=False)
        batch_op.create_index("ix_receipt_job_protocol_number", ["protocol_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("receipt_job", schema=None) as batch_op:
        batch_op.drop_index("ix_receipt_job_protocol_number")
        batch_op.drop_index("ix_receipt_job_payment_id")
    op.drop_table("receipt_job")
