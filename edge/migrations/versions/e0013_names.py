"""One name for one thing (``core.sync.records``): a time range is ``started_at``/``ended_at`` on recorded
segments, recording gaps and bookmarks. Columns are renamed (an index follows its columns); no data changes.

Revision ID: e0013_names
Revises: e0012
"""

from __future__ import annotations

from alembic import op

revision = "e0013_names"
down_revision = "e0012"
branch_labels = None
depends_on = ("e0004",)  # the recording tables: a branch of their own

TABLES = ("recording_segment", "recording_gap", "recording_bookmark")
RENAMED = (("start_utc", "started_at"), ("end_utc", "ended_at"))


def upgrade() -> None:
    for table in TABLES:
        for old, new in RENAMED:
            op.execute(f'ALTER TABLE {table} RENAME COLUMN "{old}" TO "{new}"')


def downgrade() -> None:
    for table in TABLES:
        for old, new in RENAMED:
            op.execute(f'ALTER TABLE {table} RENAME COLUMN "{new}" TO "{old}"')
