"""One name for one thing (``core.sync.records``): a segment's number is ``seq`` in the synced segment
metadata too, and a time range is ``started_at``/``ended_at`` on bookmarks and stored video segments.
Columns (and the indexes named after them) are renamed; no data changes.

Revision ID: s0021_names
Revises: s0020_protocol_driver
"""

from __future__ import annotations

from alembic import op

revision = "s0021_names"
down_revision = "s0020_protocol_driver"
branch_labels = None
depends_on = None

# (table, old column, new column)
RENAMED = (
    ("sync_segment_meta", "idx", "seq"),
    ("sync_bookmark", "at", "started_at"),
    ("video_segment", "start_utc", "started_at"),
    ("video_segment", "end_utc", "ended_at"),
)
# (table, old index, new index, the new column it covers)
REINDEXED = (
    ("sync_bookmark", "ix_sync_bookmark_at", "ix_sync_bookmark_started_at", "started_at"),
    ("video_segment", "ix_video_segment_start_utc", "ix_video_segment_started_at", "started_at"),
)


def _rename(table: str, old: str, new: str) -> None:
    op.execute(f'ALTER TABLE {table} RENAME COLUMN "{old}" TO "{new}"')


def upgrade() -> None:
    for table, old, new in RENAMED:
        _rename(table, old, new)
    for table, old_index, new_index, column in REINDEXED:
        op.drop_index(old_index, table_name=table)
        op.create_index(new_index, table, [column], unique=False)


def downgrade() -> None:
    for table, _old_index, new_index, _column in REINDEXED:
        op.drop_index(new_index, table_name=table)
    for table, old, new in reversed(RENAMED):
        _rename(table, new, old)
    for table, old_index, _new_index, _column in REINDEXED:
        old_column = next(o for t, o, n in RENAMED if t == table and n == _column)
        op.create_index(old_index, table, [old_column], unique=False)
