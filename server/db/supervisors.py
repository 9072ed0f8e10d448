"""Supervisors of the review web interface: accounts (argon2id password hashes), server-side login sessions,
login attempts (for the per-login rate limit) and the append-only access audit (chain of custody)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime


class Supervisor(Base):
    """A person who may review protocols and footage. ``password_hash`` is an argon2id PHC string (or, until
    its next login, the earlier ``scrypt$n$r$p$salt$hash``); the password itself is never stored. A disabled account cannot log in, and its sessions stop working."""

    __tablename__ = "supervisor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    role: Mapped[str] = mapped_column(String(16), default="supervisor", server_default="supervisor")  # s0017
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SupervisorSession(Base):
    """A login session. Only the SHA-256 of the cookie token is kept, so a copy of the database cannot be used
    to log in. Ends at ``expires_at`` (absolute), after an idle timeout since ``last_seen_at``, or at logout."""

    __tablename__ = "supervisor_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("supervisor.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    client: Mapped[str] = mapped_column(String(64), default="")


class LoginAttempt(Base):
    """Every login attempt, by the login name typed (known or not): the rate limit counts recent failures."""

    __tablename__ = "supervisor_login_attempt"
    __table_args__ = (Index("ix_supervisor_login_attempt_login_at", "login", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    login: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | bad_password | disabled | rate_limited
    client: Mapped[str] = mapped_column(String(64), default="")


class AccessAudit(Base):
    """Who looked at what, when, and what they changed: page views, footage plays, searches, verifications,
    exports, case changes, account changes. Append-only (the migrations add triggers that refuse UPDATE and
    DELETE) and hash-chained (s0017): ``row_hash`` covers the row and ``prev_hash``, the ``row_hash`` of the
    row before it (``server.review.audit_chain``). ``supervisor_id`` is empty for the command line's actions;
    ``supervisor_login`` then names the operator."""

    __tablename__ = "review_access_audit"
    __table_args__ = (
        Index("ix_review_access_audit_protocol", "protocol_number", "at"),
        Index("ix_review_access_audit_segment", "device_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("supervisor.id"), nullable=True)
    supervisor_login: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # protocol.view | footage.play | search | evidence.export …
    protocol_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    session_ref: Mapped[str] = mapped_column(String(16), default="")  # first 16 hex of the session hash
    client: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The one row (``id`` 1) naming the audit chain's last row and its hash; a writer locks it first."""

    __tablename__ = "review_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
