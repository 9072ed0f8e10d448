"""review: supervisor accounts, login sessions, login attempts and the append-only access audit

The audit table refuses UPDATE and DELETE through triggers (PostgreSQL and SQLite alike), so a row of the
chain of custody can only ever be added.

Revision ID: s0009
Revises: s0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0009"
down_revision = "s0008"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AUDIT = "review_access_audit"


def upgrade() -> None:
    op.create_table(
        "supervisor",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
    )
    op.create_table(
        "supervisor_session",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["supervisor_id"], ["supervisor.id"]),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index(
        op.f("ix_supervisor_session_supervisor_id"), "supervisor_session", ["supervisor_id"], unique=False
    )
    op.create_table(
        "supervisor_login_attempt",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_supervisor_login_attempt_login_at", "supervisor_login_attempt", ["login", "at"], unique=False
    )
    op.create_table(
        _AUDIT,
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=False),
        sa.Column("supervisor_login", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("protocol_number", sa.String(length=32), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("session_ref", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["supervisor_id"], ["supervisor.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_review_access_audit_protocol", _AUDIT, ["protocol_number", "at"], unique=False)
    op.create_index("ix_review_access_audit_segment", _AUDIT, ["device_id", "seq"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION review_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'review_access_audit is append-only'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER review_audit_append_only BEFORE UPDATE OR DELETE ON {_AUDIT} "
            "FOR EACH ROW EXECUTE FUNCTION review_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER review_audit_no_{event.lower()} BEFORE {event} ON {_AUDIT} "
                "BEGIN SELECT RAISE(ABORT, 'review_access_audit is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS review_audit_append_only ON {_AUDIT}")
        op.execute("DROP FUNCTION IF EXISTS review_audit_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS review_audit_no_{event}")
    op.drop_index("ix_review_access_audit_segment", table_name=_AUDIT)
    op.drop_index("ix_review_access_audit_protocol", table_name=_AUDIT)
    op.drop_table(_AUDIT)
    op.drop_index("ix_supervisor_login_attempt_login_at", table_name="supervisor_login_attempt")
    op.drop_table("supervisor_login_attempt")
    op.drop_index(op.f("ix_supervisor_session_supervisor_id"), table_name="supervisor_session")
    op.drop_table("supervisor_session")
    op.drop_table("supervisor")
