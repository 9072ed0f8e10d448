"""sync: sealed payload, signature, priority, resend and ack columns on the outbox; dataset versions

Revision ID: e0005
Revises: e0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0005"
down_revision = "e0001"
branch_labels = None
depends_on = None


def _new_columns() -> list[sa.Column]:
    return [
        sa.Column("sv", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="5"),
        sa.Column("refs", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("sig", sa.LargeBinary(), nullable=True),
        sa.Column("kid", sa.String(length=16), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("acked_at", sa.DateTime(), nullable=True),
        sa.Column("ack_status", sa.String(length=16), nullable=True),
        sa.Column("ack_detail", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        for column in _new_columns():
            batch_op.add_column(column)
        batch_op.create_index("ix_outbox_pending", ["state", "priority", "seq"], unique=False)
    op.create_table(
        "sync_dataset_version",
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "version"),
    )
    op.create_index("ix_sync_dataset_version_active", "sync_dataset_version", ["active"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sync_dataset_version_active", table_name="sync_dataset_version")
    op.drop_table("sync_dataset_version")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")
        for column in reversed(_new_columns()):
            batch_op.drop_column(column.name)
