"""fines: the lifecycle after the stop (fines, history, rules snapshots, daily runs and their lease),
notifications and postal notices, the publication list, contact phones, enforcement documents and batches,
provider payments, refund cases, reconciliation reports, API clients and the unpaid look-up's audit.

``fine_event`` and ``lookup_audit`` refuse UPDATE and DELETE through triggers (PostgreSQL and SQLite alike).

Revision ID: s0016_fines
Revises: s0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0016_fines"
down_revision = "s0014_payment_attempts"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_APPEND_ONLY = ("fine_event", "lookup_audit")


def _append_only() -> None:
    for table in _APPEND_ONLY:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(
                f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
        else:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _drop_append_only() -> None:
    for table in _APPEND_ONLY:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
        else:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")


def upgrade() -> None:
    op.create_table(
        "api_client",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("per_minute", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("key_sha256"),
    )
    op.create_table(
        "contact_phone",
        sa.Column("person_id", sa.String(length=16), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_table(
        "enforcement_batch",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("made_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=False),
        sa.Column("ack_reference", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "fine_rules",
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("label"),
    )
    op.create_table(
        "fine_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_on", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fines", sa.Integer(), nullable=False),
        sa.Column("happenings", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_fine_run_run_on"), "fine_run", ["run_on"], unique=False)
    op.create_table(
        "fine_run_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "lookup_audit",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=16), nullable=False),
        sa.Column("unpaid_count", sa.Integer(), nullable=False),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lookup_audit_person", "lookup_audit", ["person_id", "at"], unique=False)
    op.create_table(
        "payment_provider",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("hmac_key", sa.String(length=128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "fine",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("rules", sa.String(length=64), nullable=False),
        sa.Column("tariff", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=16), nullable=False),
        sa.Column("person_name", sa.String(length=200), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("article", sa.String(length=32), nullable=False),
        sa.Column("offence_date", sa.Date(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("full_minor", sa.BigInteger(), nullable=False),
        sa.Column("reduced_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_deadline", sa.Date(), nullable=False),
        sa.Column("surcharge_minor", sa.BigInteger(), nullable=False),
        sa.Column("due_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("paid_ref", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("state_since", sa.Date(), nullable=False),
        sa.Column("unpaid", sa.Boolean(), nullable=False),
        sa.Column("appealed", sa.Boolean(), nullable=False),
        sa.Column("anchors", sa.Text(), nullable=False),
        sa.Column("pauses", sa.Text(), nullable=False),
        sa.Column("next_on", sa.Date(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rules"],
            ["fine_rules.label"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index(
        "ix_fine_next_on",
        "fine",
        ["next_on", "id"],
        unique=False,
        postgresql_where=sa.text("next_on IS NOT NULL"),
        sqlite_where=sa.text("next_on IS NOT NULL"),
    )
    op.create_index(
        "ix_fine_person_unpaid",
        "fine",
        ["person_id"],
        unique=False,
        postgresql_where=sa.text("unpaid"),
        sqlite_where=sa.text("unpaid = 1"),
    )
    op.create_index("ix_fine_state", "fine", ["jurisdiction", "state"], unique=False)
    op.create_table(
        "reconciliation_report",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("mismatched", sa.Integer(), nullable=False),
        sa.Column("missing_ours", sa.Integer(), nullable=False),
        sa.Column("missing_statement", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider"],
            ["payment_provider.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "enforcement_document",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("fine_id", _BIGID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("made_on", sa.Date(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sig", sa.String(length=128), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["enforcement_batch.id"],
        ),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fine_id", "kind", name="uq_enforcement_document_kind"),
    )
    op.create_index(
        op.f("ix_enforcement_document_batch_id"), "enforcement_document", ["batch_id"], unique=False
    )
    op.create_index(
        op.f("ix_enforcement_document_fine_id"), "enforcement_document", ["fine_id"], unique=False
    )
    op.create_table(
        "fine_event",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("fine_id", _BIGID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("happened_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("from_state", sa.String(length=24), nullable=False),
        sa.Column("to_state", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_fine_event_fine_id"), "fine_event", ["fine_id"], unique=False)
    op.create_table(
        "fine_notification",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("fine_id", _BIGID, nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fine_id", "step", name="uq_fine_notification_step"),
    )
    op.create_index(
        "ix_fine_notification_due", "fine_notification", ["status", "next_attempt_at"], unique=False
    )
    op.create_table(
        "fine_sms_receipt",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("stat", sa.String(length=16), nullable=False),
        sa.Column("err", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_fine_sms_receipt_provider_id"), "fine_sms_receipt", ["provider_id"], unique=False
    )
    op.create_table(
        "fine_postal_notice",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("fine_id", _BIGID, nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome_on", sa.Date(), nullable=True),
        sa.Column("outcome_source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fine_id", "step", name="uq_fine_postal_notice_step"),
    )
    op.create_table(
        "fine_publication",
        sa.Column("fine_id", _BIGID, nullable=False),
        sa.Column("published_on", sa.Date(), nullable=False),
        sa.Column("deemed_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.PrimaryKeyConstraint("fine_id"),
    )
    op.create_index(
        op.f("ix_fine_publication_published_on"), "fine_publication", ["published_on"], unique=False
    )
    op.create_table(
        "provider_payment",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("fine_number", sa.String(length=64), nullable=False),
        sa.Column("fine_id", _BIGID, nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("due_minor", sa.BigInteger(), nullable=True),
        sa.Column("applied_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.ForeignKeyConstraint(
            ["provider"],
            ["payment_provider.name"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "reference", name="uq_provider_payment_reference"),
    )
    op.create_index(op.f("ix_provider_payment_fine_id"), "provider_payment", ["fine_id"], unique=False)
    op.create_index(
        op.f("ix_provider_payment_fine_number"), "provider_payment", ["fine_number"], unique=False
    )
    op.create_index(
        "ix_provider_payment_value_date", "provider_payment", ["provider", "value_date"], unique=False
    )
    op.create_table(
        "reconciliation_item",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reconciliation_report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_reconciliation_item_report_id"), "reconciliation_item", ["report_id"], unique=False
    )
    op.create_table(
        "fine_sms_part",
        sa.Column("provider_id", sa.String(length=128), nullable=False),
        sa.Column("notification_id", _BIGID, nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("receipt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["fine_notification.id"],
        ),
        sa.PrimaryKeyConstraint("provider_id"),
    )
    op.create_index(
        op.f("ix_fine_sms_part_notification_id"), "fine_sms_part", ["notification_id"], unique=False
    )
    op.create_table(
        "refund_case",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fine_id", _BIGID, nullable=True),
        sa.Column("provider_payment_id", _BIGID, nullable=True),
        sa.Column("device_payment_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_id"],
            ["fine.id"],
        ),
        sa.ForeignKeyConstraint(
            ["provider_payment_id"],
            ["provider_payment.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_refund_case_fine_id"), "refund_case", ["fine_id"], unique=False)
    _append_only()


def downgrade() -> None:
    _drop_append_only()
    op.drop_index(op.f("ix_refund_case_fine_id"), table_name="refund_case")
    op.drop_table("refund_case")
    op.drop_index(op.f("ix_fine_sms_part_notification_id"), table_name="fine_sms_part")
    op.drop_table("fine_sms_part")
    op.drop_index(op.f("ix_reconciliation_item_report_id"), table_name="reconciliation_item")
    op.drop_table("reconciliation_item")
    op.drop_index("ix_provider_payment_value_date", table_name="provider_payment")
    op.drop_index(op.f("ix_provider_payment_fine_number"), table_name="provider_payment")
    op.drop_index(op.f("ix_provider_payment_fine_id"), table_name="provider_payment")
    op.drop_table("provider_payment")
    op.drop_index(op.f("ix_fine_publication_published_on"), table_name="fine_publication")
    op.drop_table("fine_publication")
    op.drop_table("fine_postal_notice")
    op.drop_index(op.f("ix_fine_sms_receipt_provider_id"), table_name="fine_sms_receipt")
    op.drop_table("fine_sms_receipt")
    op.drop_index("ix_fine_notification_due", table_name="fine_notification")
    op.drop_table("fine_notification")
    op.drop_index(op.f("ix_fine_event_fine_id"), table_name="fine_event")
    op.drop_table("fine_event")
    op.drop_index(op.f("ix_enforcement_document_fine_id"), table_name="enforcement_document")
    op.drop_index(op.f("ix_enforcement_document_batch_id"), table_name="enforcement_document")
    op.drop_table("enforcement_document")
    op.drop_table("reconciliation_report")
    op.drop_index("ix_fine_state", table_name="fine")
    op.drop_index(
        "ix_fine_person_unpaid",
        table_name="fine",
        postgresql_where=sa.text("unpaid"),
        sqlite_where=sa.text("unpaid = 1"),
    )
    op.drop_index(
        "ix_fine_next_on",
        table_name="fine",
        postgresql_where=sa.text("next_on IS NOT NULL"),
        sqlite_where=sa.text("next_on IS NOT NULL"),
    )
    op.drop_table("fine")
    op.drop_table("payment_provider")
    op.drop_index("ix_lookup_audit_person", table_name="lookup_audit")
    op.drop_table("lookup_audit")
    op.drop_table("fine_run_lease")
    op.drop_index(op.f("ix_fine_run_run_on"), table_name="fine_run")
    op.drop_table("fine_run")
    op.drop_table("fine_rules")
    op.drop_table("enforcement_batch")
    op.drop_table("contact_phone")
    op.drop_table("api_client")
