"""workspace cases and synced details: complaint and appeal cases with their files and state history, the
steps of payment attempts and the reprint details of receipt events (records v2), and when the server
received each device's latest status

- ``review_case``: one case per complaint or appeal, linked to a protocol, with its channel, state and
  decision; ``review_case_event``: every change (append-only through triggers); ``review_case_file``: the
  driver's files (stored in the video store under ``cases/``, hashed);
- ``sync_payment_attempt.card_read_at``, ``authorising_at`` (payment_attempt v2);
- ``sync_receipt_event.duplicate_no``, ``verify_code``, ``mask_iin``, ``timezone``, ``unit``,
  ``software_version`` (receipt_job v2);
- ``sync_device_status.received_at``: the server's clock when the status arrived (clock drift).

Revision ID: s0019_cases_details
Revises: s0018_search_integrity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0019_cases_details"
down_revision = "s0018_search_integrity"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_EVENTS = "review_case_event"


def upgrade() -> None:
    op.create_table(
        "review_case",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("protocol_number", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("decision_text", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_review_case_protocol", "review_case", ["protocol_number", "state"])
    op.create_index("ix_review_case_state", "review_case", ["state", "updated_at"])
    op.create_table(
        _EVENTS,
        sa.Column("id", _BIGID, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_login", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["review_case.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_review_case_event_case", _EVENTS, ["case_id", "at"])
    op.create_table(
        "review_case_file",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["review_case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("storage_key"),
    )
    op.create_index("ix_review_case_file_case", "review_case_file", ["case_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION review_case_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_EVENTS} is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER review_case_event_append_only BEFORE UPDATE OR DELETE ON {_EVENTS} "
            "FOR EACH ROW EXECUTE FUNCTION review_case_event_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER review_case_event_no_{event.lower()} BEFORE {event} ON {_EVENTS} "
                f"BEGIN SELECT RAISE(ABORT, '{_EVENTS} is append-only'); END"
            )
    with op.batch_alter_table("sync_payment_attempt") as batch:
        batch.add_column(sa.Column("card_read_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("authorising_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("sync_receipt_event") as batch:
        batch.add_column(sa.Column("duplicate_no", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("verify_code", sa.String(length=400), nullable=True))
        batch.add_column(sa.Column("mask_iin", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("unit", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("software_version", sa.String(length=64), nullable=True))
    with op.batch_alter_table("sync_device_status") as batch:
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_device_status") as batch:
        batch.drop_column("received_at")
    with op.batch_alter_table("sync_receipt_event") as batch:
        for name in ("software_version", "unit", "timezone", "mask_iin", "verify_code", "duplicate_no"):
            batch.drop_column(name)
    with op.batch_alter_table("sync_payment_attempt") as batch:
        batch.drop_column("authorising_at")
        batch.drop_column("card_read_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS review_case_event_append_only ON {_EVENTS}")
        op.execute("DROP FUNCTION IF EXISTS review_case_event_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS review_case_event_no_{event}")
    op.drop_index("ix_review_case_file_case", table_name="review_case_file")
    op.drop_table("review_case_file")
    op.drop_index("ix_review_case_event_case", table_name=_EVENTS)
    op.drop_table(_EVENTS)
    op.drop_index("ix_review_case_state", table_name="review_case")
    op.drop_index("ix_review_case_protocol", table_name="review_case")
    op.drop_table("review_case")
