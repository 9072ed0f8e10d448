"""``sync_dataset_chunk``: verified chunks of a dataset version still being received, kept as received so a
device that restarts mid-download resumes it (each is verified again when loaded).

Revision ID: e0009
Revises: e0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0009"
down_revision = "e0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_dataset_chunk",
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "idx"),
    )


def downgrade() -> None:
    op.drop_table("sync_dataset_chunk")
