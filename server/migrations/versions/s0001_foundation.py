"""foundation: device, officer, protocol, payment

Revision ID: s0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "device",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("public_key_b64", sa.String(length=64), nullable=False),
        sa.Column("mqtt_username", sa.String(length=64), nullable=False),
        sa.Column("mqtt_password_hash", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
        sa.UniqueConstraint("kid"),
        sa.UniqueConstraint("mqtt_username"),
    )
    op.create_table(
        "officer",
        sa.Column("badge", sa.String(length=32), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("badge"),
    )
    op.create_table(
        "payment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("full_amount_minor", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("card_scheme", sa.String(length=64), nullable=False),
        sa.Column("masked_pan", sa.String(length=32), nullable=False),
        sa.Column("card_expiry", sa.String(length=4), nullable=False),
        sa.Column("card_hash", sa.String(length=64), nullable=False),
        sa.Column("cardholder_name", sa.String(length=64), nullable=True),
        sa.Column("name_check", sa.String(length=16), nullable=False),
        sa.Column("name_check_reason", sa.Text(), nullable=False),
        sa.Column("name_check_attested_by", sa.String(length=32), nullable=True),
        sa.Column("auth_code", sa.String(length=16), nullable=False),
        sa.Column("trace_no", sa.String(length=16), nullable=False),
        sa.Column("receipt_no", sa.String(length=16), nullable=False),
        sa.Column("terminal_id", sa.String(length=16), nullable=False),
        sa.Column("terminal_time", sa.String(length=32), nullable=False),
        sa.Column("officer_badge", sa.String(length=32), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.device_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("protocol_number"),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_device_id"), ["device_id"], unique=False)

    op.create_table(
        "protocol",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("article", sa.String(length=32), nullable=False),
        sa.Column("article_title", sa.Text(), nullable=False),
        sa.Column("offence_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offence_date", sa.Date(), nullable=False),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("driver_name", sa.String(length=200), nullable=False),
        sa.Column("driver_iin", sa.String(length=12), nullable=False),
        sa.Column("vehicle_plate", sa.String(length=16), nullable=False),
        sa.Column("officer_badge", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fine_units", sa.Integer(), nullable=False),
        sa.Column("unit_value_minor", sa.Integer(), nullable=False),
        sa.Column("unit_year", sa.Integer(), nullable=False),
        sa.Column("full_minor", sa.Integer(), nullable=False),
        sa.Column("reduced_minor", sa.Integer(), nullable=False),
        sa.Column("discount_deadline", sa.Date(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("dataset_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.device_id"],
        ),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("protocol", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_protocol_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_protocol_offence_at"), ["offence_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_protocol_officer_badge"), ["officer_badge"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("protocol", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protocol_officer_badge"))
        batch_op.drop_index(batch_op.f("ix_protocol_offence_at"))
        batch_op.drop_index(batch_op.f("ix_protocol_device_id"))

    op.drop_table("protocol")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_device_id"))

    op.drop_table("payment")
    op.drop_table("officer")
    op.drop_table("device")
