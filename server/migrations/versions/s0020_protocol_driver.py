"""Protocols keep what the officer app adds at the roadside (protocol record v2): the driver's mobile phone for
notices and the driver's agreement to the simplified procedure (when, and in which language it was read).

Revision ID: s0020_protocol_driver
Revises: s0019_cases_details
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0020_protocol_driver"
down_revision = "s0019_cases_details"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("protocol") as batch:
        batch.add_column(sa.Column("driver_phone", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("driver_agreed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("driver_agreed_language", sa.String(length=2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("protocol") as batch:
        batch.drop_column("driver_agreed_language")
        batch.drop_column("driver_agreed_at")
        batch.drop_column("driver_phone")
