"""The officer app: an officer's PIN (argon2 hash only), language and PIN lockout; sign-in sessions (their token
kept only as a SHA-256); the Pay requests the app has taken (idempotency keys); and on the protocol the driver's
phone for notices and the driver's agreement to the simplified procedure.

Revision ID: e0012
Revises: e0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0012"
down_revision = "e0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("officer") as batch:
        batch.add_column(sa.Column("pin_hash", sa.Text(), nullable=True))
        batch.add_column(sa.Column("language", sa.String(length=2), nullable=False, server_default="ru"))
        batch.add_column(sa.Column("pin_failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pin_locked_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("protocol") as batch:
        batch.add_column(sa.Column("driver_phone", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("driver_agreed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("driver_agreed_language", sa.String(length=2), nullable=True))
        batch.create_index("ix_protocol_officer_created", ["officer_badge", "created_at"])
    op.create_table(
        "officer_session",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("badge", sa.String(length=32), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["badge"], ["officer.badge"]),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_table(
        "pay_request",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("attempt_id", sa.String(length=36), nullable=True),
        sa.Column("badge", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["protocol_number"], ["protocol.number"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_pay_request_protocol_number", "pay_request", ["protocol_number"])
    op.create_index("ix_pay_request_job_id", "pay_request", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_pay_request_job_id", table_name="pay_request")
    op.drop_index("ix_pay_request_protocol_number", table_name="pay_request")
    op.drop_table("pay_request")
    op.drop_table("officer_session")
    with op.batch_alter_table("protocol") as batch:
        batch.drop_index("ix_protocol_officer_created")
        batch.drop_column("driver_agreed_language")
        batch.drop_column("driver_agreed_at")
        batch.drop_column("driver_phone")
    with op.batch_alter_table("officer") as batch:
        batch.drop_column("pin_locked_until")
        batch.drop_column("pin_failures")
        batch.drop_column("language")
        batch.drop_column("pin_hash")
