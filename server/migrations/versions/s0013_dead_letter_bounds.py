"""A dead letter keeps at most the first 64 KiB of what was refused, with the whole message's size and SHA-256
(``size_bytes``, ``sha256``): one oversized message no longer stores megabytes. Rows already there get both
figures computed from their data, which is then cut to the same 64 KiB.

Revision ID: s0013
Revises: s0012
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "s0013"
down_revision = "s0012"
branch_labels = None
depends_on = None

KEPT_BYTES = 64 * 1024  # server.ingest.pipeline.DEAD_LETTER_KEPT_BYTES at the time of this migration

_table = sa.table(
    "sync_dead_letter",
    sa.column("id", sa.Integer),
    sa.column("data", sa.LargeBinary),
    sa.column("size_bytes", sa.BigInteger),
    sa.column("sha256", sa.String(64)),
)


def upgrade() -> None:
    with op.batch_alter_table("sync_dead_letter") as batch:
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(_table.c.id, _table.c.data).where(_table.c.id > last).order_by(_table.c.id).limit(200)
        ).all()
        if not rows:
            break
        for row_id, data in rows:
            data = bytes(data or b"")
            conn.execute(
                _table.update()
                .where(_table.c.id == row_id)
                .values(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), data=data[:KEPT_BYTES])
            )
        last = rows[-1][0]
    with op.batch_alter_table("sync_dead_letter") as batch:
        batch.alter_column("size_bytes", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("sha256", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_dead_letter") as batch:
        batch.drop_column("sha256")
        batch.drop_column("size_bytes")
