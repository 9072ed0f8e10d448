"""sync: inbox, stream state, dead letters, conflicts, datasets, and synced record tables

Revision ID: s0005
Revises: s0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0005"
down_revision = "s0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_bookmark",
        sa.Column("bookmark_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=True),
        sa.Column("officer_badge", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("bookmark_id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index(op.f("ix_sync_bookmark_at"), "sync_bookmark", ["at"], unique=False)
    op.create_index(op.f("ix_sync_bookmark_device_id"), "sync_bookmark", ["device_id"], unique=False)
    op.create_index(
        op.f("ix_sync_bookmark_protocol_number"), "sync_bookmark", ["protocol_number"], unique=False
    )
    op.create_table(
        "sync_conflict",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("stored_sha256", sa.String(length=64), nullable=False),
        sa.Column("new_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_sync_conflict_device_id"), "sync_conflict", ["device_id"], unique=False)
    op.create_table(
        "sync_dataset",
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "version"),
    )
    op.create_table(
        "sync_dead_letter",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("topic", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_sync_dead_letter_device_id"), "sync_dead_letter", ["device_id"], unique=False)
    op.create_index(op.f("ix_sync_dead_letter_reason"), "sync_dead_letter", ["reason"], unique=False)
    op.create_table(
        "sync_device_dataset",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "dataset"),
    )
    op.create_table(
        "sync_device_status",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "sync_inbox",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("sv", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "epoch", "seq"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_table(
        "sync_own_card_check",
        sa.Column("check_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("cardholder_name", sa.String(length=64), nullable=True),
        sa.Column("driver_name", sa.String(length=200), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attested_by", sa.String(length=32), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("check_id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index(
        op.f("ix_sync_own_card_check_device_id"), "sync_own_card_check", ["device_id"], unique=False
    )
    op.create_index(
        op.f("ix_sync_own_card_check_protocol_number"),
        "sync_own_card_check",
        ["protocol_number"],
        unique=False,
    )
    op.create_table(
        "sync_receipt_event",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=True),
        sa.Column("payment_id", sa.String(length=64), nullable=True),
        sa.Column("copy_no", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
    )
    op.create_index(
        op.f("ix_sync_receipt_event_device_id"), "sync_receipt_event", ["device_id"], unique=False
    )
    op.create_index(op.f("ix_sync_receipt_event_job_id"), "sync_receipt_event", ["job_id"], unique=False)
    op.create_index(
        op.f("ix_sync_receipt_event_protocol_number"), "sync_receipt_event", ["protocol_number"], unique=False
    )
    op.create_table(
        "sync_recording_gap",
        sa.Column("gap_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("gap_id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index(
        op.f("ix_sync_recording_gap_device_id"), "sync_recording_gap", ["device_id"], unique=False
    )
    op.create_table(
        "sync_segment_meta",
        sa.Column("segment_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=True),
        sa.Column("codec", sa.String(length=32), nullable=False),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id"),
        sa.UniqueConstraint("record_id"),
    )
    op.create_index(op.f("ix_sync_segment_meta_device_id"), "sync_segment_meta", ["device_id"], unique=False)
    op.create_index(
        op.f("ix_sync_segment_meta_recording_id"), "sync_segment_meta", ["recording_id"], unique=False
    )
    op.create_index(
        op.f("ix_sync_segment_meta_started_at"), "sync_segment_meta", ["started_at"], unique=False
    )
    op.create_table(
        "sync_stream",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column("hwm", sa.BigInteger(), nullable=False),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.Column("gap_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_resend_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resend_requests", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "epoch"),
    )


def downgrade() -> None:
    op.drop_table("sync_stream")
    op.drop_index(op.f("ix_sync_segment_meta_started_at"), table_name="sync_segment_meta")
    op.drop_index(op.f("ix_sync_segment_meta_recording_id"), table_name="sync_segment_meta")
    op.drop_index(op.f("ix_sync_segment_meta_device_id"), table_name="sync_segment_meta")
    op.drop_table("sync_segment_meta")
    op.drop_index(op.f("ix_sync_recording_gap_device_id"), table_name="sync_recording_gap")
    op.drop_table("sync_recording_gap")
    op.drop_index(op.f("ix_sync_receipt_event_protocol_number"), table_name="sync_receipt_event")
    op.drop_index(op.f("ix_sync_receipt_event_job_id"), table_name="sync_receipt_event")
    op.drop_index(op.f("ix_sync_receipt_event_device_id"), table_name="sync_receipt_event")
    op.drop_table("sync_receipt_event")
    op.drop_index(op.f("ix_sync_own_card_check_protocol_number"), table_name="sync_own_card_check")
    op.drop_index(op.f("ix_sync_own_card_check_device_id"), table_name="sync_own_card_check")
    op.drop_table("sync_own_card_check")
    op.drop_table("sync_inbox")
    op.drop_table("sync_device_status")
    op.drop_table("sync_device_dataset")
    op.drop_index(op.f("ix_sync_dead_letter_reason"), table_name="sync_dead_letter")
    op.drop_index(op.f("ix_sync_dead_letter_device_id"), table_name="sync_dead_letter")
    op.drop_table("sync_dead_letter")
    op.drop_table("sync_dataset")
    op.drop_index(op.f("ix_sync_conflict_device_id"), table_name="sync_conflict")
    op.drop_table("sync_conflict")
    op.drop_index(op.f("ix_sync_bookmark_protocol_number"), table_name="sync_bookmark")
    op.drop_index(op.f("ix_sync_bookmark_device_id"), table_name="sync_bookmark")
    op.drop_index(op.f("ix_sync_bookmark_at"), table_name="sync_bookmark")
    op.drop_table("sync_bookmark")
