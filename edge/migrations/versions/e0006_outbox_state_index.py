"""The outbox's single-column ``state`` index goes: ``ix_outbox_pending (state, priority, seq)`` serves every
query by state, and each ack changed both indexes for every row it freed.

Revision ID: e0006
Revises: e0005
"""

from __future__ import annotations

from alembic import op

revision = "e0006"
down_revision = "e0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_state")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_state", ["state"], unique=False)
