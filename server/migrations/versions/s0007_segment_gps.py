"""sync: GPS position at a segment's start and end, and how many of its seconds had a fix (segment v2)

Revision ID: s0007
Revises: s0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0007"
down_revision = "s0006"
branch_labels = None
depends_on = None

_COLUMNS = (
    "start_lat",
    "start_lon",
    "end_lat",
    "end_lon",
    "gps_fix_seconds",
    "gps_seconds",
)


def upgrade() -> None:
    with op.batch_alter_table("sync_segment_meta") as batch:
        batch.add_column(sa.Column("start_lat", sa.Float(), nullable=True))
        batch.add_column(sa.Column("start_lon", sa.Float(), nullable=True))
        batch.add_column(sa.Column("end_lat", sa.Float(), nullable=True))
        batch.add_column(sa.Column("end_lon", sa.Float(), nullable=True))
        batch.add_column(sa.Column("gps_fix_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("gps_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_segment_meta") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
