"""video: uploaded segments with their manifest entries

Revision ID: s0004
Revises: s0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0004"
down_revision = "s0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_segment",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("start_utc", sa.DateTime(), nullable=False),
        sa.Column("end_utc", sa.DateTime(), nullable=False),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_json", sa.Text(), nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("repaired", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("linked_prev", sa.Boolean(), nullable=False),
        sa.Column("storage_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "seq", name="uq_video_segment_device_seq"),
    )
    op.create_index("ix_video_segment_device_id", "video_segment", ["device_id"])
    op.create_index("ix_video_segment_start_utc", "video_segment", ["start_utc"])


def downgrade() -> None:
    op.drop_index("ix_video_segment_start_utc", table_name="video_segment")
    op.drop_index("ix_video_segment_device_id", table_name="video_segment")
    op.drop_table("video_segment")
