"""``sync_segment_meta`` no longer indexes ``recording_id``: no server query looks segments up by recording
(the review finds a device's footage by ``(device_id, started_at)``), and the index cost an insert and its
WAL for every synced segment, most of the records a device sends.

Revision ID: s0011
Revises: s0010
"""

from __future__ import annotations

from alembic import op

revision = "s0011"
down_revision = "s0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_sync_segment_meta_recording_id", table_name="sync_segment_meta")


def downgrade() -> None:
    op.create_index("ix_sync_segment_meta_recording_id", "sync_segment_meta", ["recording_id"], unique=False)
