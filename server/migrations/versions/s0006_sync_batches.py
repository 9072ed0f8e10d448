"""sync: batch proofs (one signature per v2 message), conflict kinds, bookmark end time

Revision ID: s0006
Revises: s0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0006"
down_revision = "s0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_batch",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_sync_batch_device_id"), "sync_batch", ["device_id"], unique=False)
    with op.batch_alter_table("sync_inbox") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_sync_inbox_batch_id"), ["batch_id"], unique=False)
    with op.batch_alter_table("sync_conflict") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=32), nullable=False, server_default="seq"))
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))
        batch.create_index(batch.f("ix_sync_conflict_kind"), ["kind"], unique=False)
    with op.batch_alter_table("sync_bookmark") as batch:
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_bookmark") as batch:
        batch.drop_column("ended_at")
    with op.batch_alter_table("sync_conflict") as batch:
        batch.drop_index(batch.f("ix_sync_conflict_kind"))
        batch.drop_column("detail")
        batch.drop_column("kind")
    with op.batch_alter_table("sync_inbox") as batch:
        batch.drop_index(batch.f("ix_sync_inbox_batch_id"))
        batch.drop_column("batch_id")
    op.drop_index(op.f("ix_sync_batch_device_id"), table_name="sync_batch")
    op.drop_table("sync_batch")
