"""the store's Object Lock follows retention: what the store is known to hold for each stored segment and
case file, set only once the store did it (``server.review.object_locks``)

- ``video_segment.store_locked_until``: the compliance lock's date the retention run extended it to;
- ``video_segment.store_legal_hold``: whether the object's legal hold is ON (a case's legal hold covers it);
- ``review_case_file.store_locked_until``: the date the file's compliance lock runs to.

Revision ID: s0023_store_locks
Revises: s0022_retention
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0023_store_locks"
down_revision = "s0022_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_segment") as batch:
        batch.add_column(sa.Column("store_locked_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("store_legal_hold", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("review_case_file") as batch:
        batch.add_column(sa.Column("store_locked_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_case_file") as batch:
        batch.drop_column("store_locked_until")
    with op.batch_alter_table("video_segment") as batch:
        batch.drop_column("store_legal_hold")
        batch.drop_column("store_locked_until")
