"""Payment attempts remember when the card was read (``card_read_at``), synced in payment_attempt v2 so that
a supervisor sees it on the footage's clock.

Revision ID: e0011
Revises: e0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0011"
down_revision = "e0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_attempt") as batch:
        batch.add_column(sa.Column("card_read_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_attempt") as batch:
        batch.drop_column("card_read_at")
