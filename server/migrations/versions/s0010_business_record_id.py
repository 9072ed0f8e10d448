"""Business tables fed by sync no longer keep a unique index on ``record_id``: the inbox already holds each
record id once, and a business row is written only for a record newly stored in the inbox (a second record
with the same id is a conflict and writes no business row). The column stays, as the link to the inbox;
one index insert fewer per synced record (segments are most of them).

Revision ID: s0010
Revises: s0009
"""

from __future__ import annotations

from alembic import op

revision = "s0010"
down_revision = "s0009"
branch_labels = None
depends_on = None

TABLES = ("sync_segment_meta", "sync_recording_gap", "sync_bookmark", "sync_own_card_check")
# SQLite keeps these constraints unnamed: batch mode names them on reflection so they can be dropped
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch:
                batch.drop_constraint(f"uq_{table}_record_id", type_="unique")
        return
    for table in TABLES:
        op.drop_constraint(f"{table}_record_id_key", table, type_="unique")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(f"{table}_record_id_key", ["record_id"])
