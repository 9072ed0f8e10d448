"""The fines after the stop: one row per fine with its state and dated anchors, its history, the rules
snapshots fines are issued under, and the bookkeeping of the daily run (runs and the run lease)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class FineRules(Base):
    """The exact text of a lifecycle rules version: a fine is run by the rules it was issued under, forever."""

    __tablename__ = "fine_rules"

    label: Mapped[str] = mapped_column(String(64), primary_key=True)  # dataset@version
    jurisdiction: Mapped[str] = mapped_column(String(2))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Fine(Base):
    """One fine: from a synced protocol (``source`` = ``protocol``) or imported (e.g. a camera system).

    ``anchors`` (JSON ``{name: "YYYY-MM-DD"}``) and ``pauses`` (JSON ``[[start, end or null]]``) are the
    lifecycle engine's facts; ``next_on`` is the next day something happens by itself (the daily run's
    index); ``unpaid`` and ``due_minor`` serve the unpaid look-up. ``appealed`` is the appealed mark: set
    while an appeal or complaint case is open, it pauses the fine's clocks.
    """

    __tablename__ = "fine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    jurisdiction: Mapped[str] = mapped_column(String(2))
    rules: Mapped[str] = mapped_column(ForeignKey("fine_rules.label"))
    tariff: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(16))
    person_name: Mapped[str] = mapped_column(String(200))
    plate: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    article: Mapped[str] = mapped_column(String(32))
    offence_date: Mapped[date] = mapped_column(Date)
    issued_on: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    full_minor: Mapped[int] = mapped_column(BigInteger)
    reduced_minor: Mapped[int] = mapped_column(BigInteger)
    discount_deadline: Mapped[date] = mapped_column(Date)
    surcharge_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    due_minor: Mapped[int] = mapped_column(BigInteger)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    paid_ref: Mapped[str] = mapped_column(
        String(128), default=""
    )  # device:<payment id> | <provider>:<reference>
    state: Mapped[str] = mapped_column(String(24))
    state_since: Mapped[date] = mapped_column(Date)
    unpaid: Mapped[bool] = mapped_column(Boolean)
    appealed: Mapped[bool] = mapped_column(Boolean, default=False)
    anchors: Mapped[str] = mapped_column(Text)
    pauses: Mapped[str] = mapped_column(Text, default="[]")
    next_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(
            "ix_fine_next_on",
            "next_on",
            "id",
            postgresql_where=text("next_on IS NOT NULL"),
            sqlite_where=text("next_on IS NOT NULL"),
        ),
        Index(
            "ix_fine_person_unpaid",
            "person_id",
            postgresql_where=text("unpaid"),
            sqlite_where=text("unpaid = 1"),
        ),
        Index("ix_fine_state", "jurisdiction", "state"),
    )


class FineEvent(Base):
    """The history of a fine, one row per thing that happened to it (append-only)."""

    __tablename__ = "fine_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fine_id: Mapped[int] = mapped_column(ForeignKey("fine.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    happened_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24))
    step: Mapped[str | None] = mapped_column(String(32), nullable=True)
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(Text, default="")


class FineRun(Base):
    """One daily run: for which day, when, by which process, and what it did."""

    __tablename__ = "fine_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_on: Mapped[date] = mapped_column(Date, index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed | cut_off
    fines: Mapped[int] = mapped_column(Integer, default=0)
    happenings: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str] = mapped_column(String(128))


class RunLease(Base):
    """The daily run's lock where the database has no advisory locks (SQLite): who holds it until when."""

    __tablename__ = "fine_run_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    host: Mapped[str] = mapped_column(String(128), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
