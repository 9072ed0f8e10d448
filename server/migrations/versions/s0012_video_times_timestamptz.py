"""``video_segment``'s times become ``timestamptz`` on PostgreSQL, as its model (``UtcDateTime``) says.

s0004 made them ``timestamp`` without a time zone. An aware UTC time written there is converted to the
session's ``TimeZone`` and stored without it, then read back as if it were UTC: on a server whose time zone
is not UTC (Asia/Almaty, Asia/Tbilisi) the footage of a stop was placed hours off. The values are converted
in the time zone they were written in (this session's, the server default that the ingest also used).
SQLite stores naive UTC text either way: nothing to do there.

Revision ID: s0012
Revises: s0011
"""

from __future__ import annotations

from alembic import op

revision = "s0012"
down_revision = "s0011"
branch_labels = None
depends_on = "s0004"  # the video branch: its table must exist

COLUMNS = ("start_utc", "end_utc", "created_at", "stored_at")


def _retype(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for col in COLUMNS:
        op.execute(
            f"ALTER TABLE video_segment ALTER COLUMN {col} TYPE {sql_type} "
            f"USING {col} AT TIME ZONE current_setting('TimeZone')"
        )


def upgrade() -> None:
    _retype("timestamptz")


def downgrade() -> None:
    _retype("timestamp")
