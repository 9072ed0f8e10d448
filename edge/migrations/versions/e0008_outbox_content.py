"""The outbox row keeps a record's identity and delivery state; its content (body, signed payload and
signature, ~1.5 KB a record) moves to ``outbox_content``, written once. An ack then rewrites a ~200-byte
row instead of a ~2 KB one: the pages it dirties (WAL writes, then checkpoint copies) shrink with it.
"Sealed" is now ``sha256 IS NOT NULL`` (set in the same transaction as the payload).

Revision ID: e0008
Revises: e0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0008"
down_revision = "e0007"
branch_labels = None
depends_on = None


def _content_table(name: str, with_key: bool) -> None:
    op.create_table(
        name,
        sa.Column("seq", sa.Integer(), *([sa.ForeignKey("outbox.seq")] if with_key else []), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("sig", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )


def upgrade() -> None:
    # the content goes aside first: outbox is recreated below, and a table referencing it would block that
    _content_table("outbox_content_move", with_key=False)
    op.execute("INSERT INTO outbox_content_move SELECT seq, body, payload, sig FROM outbox")
    _recreate_outbox(["sig", "payload", "body"], [])
    _content_table("outbox_content", with_key=True)
    op.execute("INSERT INTO outbox_content SELECT seq, body, payload, sig FROM outbox_content_move")
    op.drop_table("outbox_content_move")


def downgrade() -> None:
    _content_table("outbox_content_move", with_key=False)
    op.execute("INSERT INTO outbox_content_move SELECT seq, body, payload, sig FROM outbox_content")
    op.drop_table("outbox_content")
    _recreate_outbox(
        [],
        [
            sa.Column("body", sa.Text(), nullable=False, server_default=""),
            sa.Column("payload", sa.LargeBinary(), nullable=True),
            sa.Column("sig", sa.LargeBinary(), nullable=True),
        ],
    )
    op.execute(
        "UPDATE outbox SET body = c.body, payload = c.payload, sig = c.sig FROM outbox_content_move AS c "
        "WHERE c.seq = outbox.seq"
    )
    op.drop_table("outbox_content_move")


def _recreate_outbox(drop: list[str], add: list[sa.Column]) -> None:
    """Batch mode copies ``outbox`` into a new table: keep AUTOINCREMENT, and the sequence counter that
    dropping the old table deletes from ``sqlite_sequence`` (a sequence number is never reused)."""
    bind = op.get_bind()
    used = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").scalar() or 0
    with op.batch_alter_table(
        "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        for name in drop:
            batch.drop_column(name)
        for column in add:
            batch.add_column(column)
    bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
    bind.exec_driver_sql(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', max(?, coalesce(max(seq), 0)) FROM outbox",
        (used,),
    )
