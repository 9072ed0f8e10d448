"""workspace search and integrity: the driver's name as search keys, indexes for the look-ups by protocol
number, plate and IIN, each stored segment's layout and latest verification, and every verification kept

- ``protocol_name_key`` (``core.name_search.search_key`` of each word of the driver's name), filled here for
  the protocols already stored and by the ingest from now on;
- on PostgreSQL, ``text_pattern_ops`` indexes on ``upper(number)``, the plate without spaces and dashes, and
  ``driver_iin``, so that a prefix look-up is an index range scan;
- ``video_segment.layout_json`` (byte ranges of its init data and fragments, ``server.video.fmp4``),
  ``checked_at`` and ``check_verdict`` (the latest verification);
- ``segment_verification``: every verification of a stored segment, by whom (an account or the background
  verifier), its verdict and reasons.

Revision ID: s0018_search_integrity
Revises: s0017_workspace
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0018_search_integrity"
down_revision = "s0017_workspace"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    from core.name_search import name_keys

    op.create_table(
        "protocol_name_key",
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("protocol_number", "key"),
    )
    op.create_index("ix_protocol_name_key_key", "protocol_name_key", ["key", "protocol_number"],
                    postgresql_ops={"key": "text_pattern_ops"})  # fmt: skip
    bind = op.get_bind()
    protocols = sa.table("protocol", sa.column("number"), sa.column("driver_name"))
    keys = sa.table("protocol_name_key", sa.column("protocol_number"), sa.column("key"))
    rows = [
        {"protocol_number": number, "key": key[:64]}
        for number, name in bind.execute(sa.select(protocols.c.number, protocols.c.driver_name))
        for key in name_keys(name or "")
    ]
    for start in range(0, len(rows), 1000):
        bind.execute(keys.insert(), rows[start : start + 1000])
    if bind.dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_protocol_number_upper ON protocol (upper(number) text_pattern_ops)")
        op.execute(
            "CREATE INDEX ix_protocol_plate_search ON protocol "
            "(upper(replace(replace(vehicle_plate, ' ', ''), '-', '')) text_pattern_ops)"
        )
    op.create_index("ix_protocol_driver_iin", "protocol", ["driver_iin"],
                    postgresql_ops={"driver_iin": "text_pattern_ops"})  # fmt: skip
    with op.batch_alter_table("video_segment") as batch:
        batch.add_column(sa.Column("layout_json", sa.Text(), nullable=True))
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("check_verdict", sa.String(length=16), nullable=True))
    op.create_index("ix_video_segment_checked", "video_segment", ["state", "checked_at"])
    op.create_table(
        "segment_verification",
        sa.Column("id", _BIGID, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("checked_by", sa.String(length=64), nullable=False),
        sa.Column("sha256_found", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_verification_segment", "segment_verification", ["device_id", "seq", "checked_at"])


def downgrade() -> None:
    op.drop_index("ix_segment_verification_segment", table_name="segment_verification")
    op.drop_table("segment_verification")
    op.drop_index("ix_video_segment_checked", table_name="video_segment")
    with op.batch_alter_table("video_segment") as batch:
        batch.drop_column("check_verdict")
        batch.drop_column("checked_at")
        batch.drop_column("layout_json")
    if op.get_bind().dialect.name == "postgresql":
        for name in ("ix_protocol_plate_search", "ix_protocol_number_upper"):
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_protocol_driver_iin", table_name="protocol")
    op.drop_index("ix_protocol_name_key_key", table_name="protocol_name_key")
    op.drop_table("protocol_name_key")
