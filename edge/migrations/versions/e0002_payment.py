"""payment: payment_attempt journal

Revision ID: e0002
Revises: e0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0002"
down_revision = "e0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_attempt",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("officer_badge", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("masked_pan", sa.String(length=32), nullable=False),
        sa.Column("card_scheme", sa.String(length=64), nullable=False),
        sa.Column("card_expiry", sa.String(length=4), nullable=False),
        sa.Column("card_hash", sa.String(length=64), nullable=False),
        sa.Column("cardholder_name", sa.String(length=64), nullable=True),
        sa.Column("name_check", sa.String(length=16), nullable=True),
        sa.Column("name_check_reason", sa.Text(), nullable=False),
        sa.Column("name_check_by", sa.String(length=32), nullable=True),
        sa.Column("name_check_at", sa.DateTime(), nullable=True),
        sa.Column("result_hex", sa.Text(), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("trace_no", sa.Integer(), nullable=True),
        sa.Column("receipt_no", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["protocol_number"], ["protocol.number"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_attempt_protocol_number", "payment_attempt", ["protocol_number"])
    op.create_index("ix_payment_attempt_state", "payment_attempt", ["state"])


def downgrade() -> None:
    op.drop_index("ix_payment_attempt_state", table_name="payment_attempt")
    op.drop_index("ix_payment_attempt_protocol_number", table_name="payment_attempt")
    op.drop_table("payment_attempt")
