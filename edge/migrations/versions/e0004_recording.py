"""recording: segments with upload state, gaps, bookmarks

Revision ID: e0004
Revises: e0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0004"
down_revision = "e0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recording_segment",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("start_utc", sa.DateTime(), nullable=False),
        sa.Column("end_utc", sa.DateTime(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("repaired", sa.Boolean(), nullable=False),
        sa.Column("entry_json", sa.Text(), nullable=False),
        sa.Column("file_name", sa.String(length=64), nullable=False),
        sa.Column("upload_state", sa.String(length=16), nullable=False),
        sa.Column("uploaded_bytes", sa.Integer(), nullable=False),
        sa.Column("upload_error", sa.Text(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_recording_segment_upload", "recording_segment", ["upload_state", "seq"])
    op.create_table(
        "recording_gap",
        sa.Column("gap_id", sa.String(length=36), nullable=False),
        sa.Column("start_utc", sa.DateTime(), nullable=False),
        sa.Column("end_utc", sa.DateTime(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("seq_before", sa.Integer(), nullable=True),
        sa.Column("seq_after", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("gap_id"),
    )
    op.create_table(
        "recording_bookmark",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("start_utc", sa.DateTime(), nullable=False),
        sa.Column("end_utc", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recording_bookmark_range", "recording_bookmark", ["start_utc", "end_utc"])
    op.create_index("ix_recording_bookmark_ref", "recording_bookmark", ["ref"])


def downgrade() -> None:
    op.drop_index("ix_recording_bookmark_ref", table_name="recording_bookmark")
    op.drop_index("ix_recording_bookmark_range", table_name="recording_bookmark")
    op.drop_table("recording_bookmark")
    op.drop_table("recording_gap")
    op.drop_index("ix_recording_segment_upload", table_name="recording_segment")
    op.drop_table("recording_segment")
