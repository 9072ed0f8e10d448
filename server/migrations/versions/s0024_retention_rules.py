"""retention runs keep the rules they judged by, so that a run under changed rules judges every stored
segment again (``retention_run.rules``)

Revision ID: s0024_retention_rules
Revises: s0023_store_locks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0024_retention_rules"
down_revision = "s0023_store_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retention_run") as batch:
        batch.add_column(sa.Column("rules", sa.String(120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retention_run") as batch:
        batch.drop_column("rules")
