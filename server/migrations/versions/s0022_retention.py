"""footage retention by category: the segment row keeps its retention category, until when it is kept, and
(as a tombstone once the retention run deleted its object) when and why it was deleted; the stretches of
footage events link, the legal holds of cases, and the retention runs

- ``video_segment.retention_category``, ``retain_until``, ``deleted_at``, ``deleted_reason``;
- ``footage_link``: a device's footage from ``started_at`` to ``ended_at`` linked to a paid stop, a case or an
  export (kept for that category's years from ``at``);
- ``footage_hold``: a case's legal hold on a stretch of footage, until released;
- ``retention_run``: one row per run (its moment, counts, when it finished).

Revision ID: s0022_retention
Revises: s0020_protocol_driver
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0022_retention"
down_revision = "s0020_protocol_driver"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("video_segment") as batch:
        batch.add_column(sa.Column("retention_category", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_reason", sa.String(length=200), nullable=True))
    op.create_index("ix_video_segment_retention", "video_segment", ["state", "retain_until"])
    op.create_table(
        "footage_link",
        sa.Column("id", _BIGID, nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "device_id", "started_at", "ended_at", name="uq_footage_link_stretch"),
    )
    op.create_index("ix_footage_link_device", "footage_link", ["device_id", "started_at"])
    op.create_table(
        "footage_hold",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["review_case.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_footage_hold_device", "footage_hold", ["device_id", "released_at"])
    op.create_index("ix_footage_hold_case", "footage_hold", ["case_id"])
    op.create_table(
        "retention_run",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("now", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("links_made", sa.Integer(), nullable=False),
        sa.Column("classified", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("deleted_bytes", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("run_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("retention_run")
    op.drop_index("ix_footage_hold_case", table_name="footage_hold")
    op.drop_index("ix_footage_hold_device", table_name="footage_hold")
    op.drop_table("footage_hold")
    op.drop_index("ix_footage_link_device", table_name="footage_link")
    op.drop_table("footage_link")
    op.drop_index("ix_video_segment_retention", table_name="video_segment")
    with op.batch_alter_table("video_segment") as batch:
        batch.drop_column("deleted_reason")
        batch.drop_column("deleted_at")
        batch.drop_column("retain_until")
        batch.drop_column("retention_category")
