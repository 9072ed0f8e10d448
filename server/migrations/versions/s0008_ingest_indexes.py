"""Fewer indexes written per synced record: the inbox's batch_id index goes (a record finds its batch by the
batch's primary key; nothing looks records up by batch), and segment metadata gets one (device_id, started_at)
index in place of one on each column (a device's footage by time, and a device's footage, both use it).

Revision ID: s0008
Revises: s0007
"""

from __future__ import annotations

from alembic import op

revision = "s0008"
down_revision = "s0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_inbox") as batch:
        batch.drop_index("ix_sync_inbox_batch_id")
    with op.batch_alter_table("sync_segment_meta") as batch:
        batch.drop_index("ix_sync_segment_meta_device_id")
        batch.drop_index("ix_sync_segment_meta_started_at")
        batch.create_index("ix_sync_segment_meta_device_started", ["device_id", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_segment_meta") as batch:
        batch.drop_index("ix_sync_segment_meta_device_started")
        batch.create_index("ix_sync_segment_meta_started_at", ["started_at"], unique=False)
        batch.create_index("ix_sync_segment_meta_device_id", ["device_id"], unique=False)
    with op.batch_alter_table("sync_inbox") as batch:
        batch.create_index("ix_sync_inbox_batch_id", ["batch_id"], unique=False)
