"""``ix_outbox_pending`` holds only pending rows: ``(priority, seq) WHERE state = 'pending'``.

The drain reads pending rows by (priority, seq) and nothing else reads the outbox by state through an
index; with the full index every ack deleted and re-inserted an entry per row, now it only deletes one, and
the index stays as small as the backlog instead of growing with the history.

Revision ID: e0007
Revises: e0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0007"
down_revision = "e0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index(
        "ix_outbox_pending", "outbox", ["priority", "seq"], sqlite_where=sa.text("state = 'pending'")
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["state", "priority", "seq"])
