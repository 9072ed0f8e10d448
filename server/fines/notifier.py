"""Sending the SMS the lifecycle recorded, and taking their delivery receipts.

A notification row exists before anything is sent (``UNIQUE (fine, step)``: a step's SMS is recorded once).
Sending one is:

1. **claim**: ``pending`` → ``sending`` (with ``claimed_at``, attempts + 1) and commit, a batch at a time
   (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so two senders never claim the same row);
2. **send** through the gateway;
3. **record**: ``sent`` with the provider's id(s); refused → ``pending`` again after a backoff (``retry_s``
   doubling up to ``retry_max_s``), ``failed`` after ``max_attempts``; cut off → ``uncertain`` (never sent
   again), or ``pending`` with the same reference where the gateway drops repeats (``idempotent``).

A process stopped between 1 and 3 leaves ``sending`` rows; the next sender treats those older than
``stale_after_s`` as cut off. A delivery receipt moves ``sent`` (or ``uncertain``: then it did go out) to
``delivered`` once every part is delivered, or ``undelivered`` when a part failed.

A receipt can overtake the record of its own submit: it is kept unapplied, and recording the part applies
it. The two meet under one lock (a transaction-scoped advisory lock on PostgreSQL; SQLite has one writer),
so that neither commits unseen by the other: without it each transaction could miss the other's uncommitted
row and the receipt would stay unapplied for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core.structured_log import log_event
from server.db.base import transaction
from server.db.fine_notices import FineNotification, SmsPart, SmsReceipt
from server.fines.bulk_sql import by_shape, insert_rows, update_rows
from server.fines.daily_run import claim_writes
from server.fines.smpp_receipts import Receipt, id_forms
from server.fines.sms_gateway import OutgoingSms, SendOutcome, SendResult, SmsGateway

log = logging.getLogger(__name__)

RECEIPT_MATCH_LOCK = 0x7061_7472_6F6C_736D  # the advisory lock number under which receipts meet their parts


def _lock_receipt_matching(session: Session) -> None:
    """Serialise this transaction's matching of receipts and parts with every other's, until it commits."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": RECEIPT_MATCH_LOCK})


@dataclass(frozen=True)
class NotifySettings:
    max_attempts: int = 6
    retry_s: float = 60.0
    retry_max_s: float = 6 * 3600.0
    stale_after_s: float = 300.0


@dataclass
class SendReport:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    phone: str
    text: str
    attempts: int


def backoff(settings: NotifySettings, attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.retry_s * 2 ** max(0, attempts - 1), settings.retry_max_s))


_CLAIM_PG = (
    "UPDATE fine_notification SET status = 'sending', claimed_at = %(now)s, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM fine_notification WHERE status = 'pending' AND next_attempt_at <= %(now)s "
    "ORDER BY next_attempt_at, id LIMIT %(n)s FOR UPDATE SKIP LOCKED) RETURNING id, phone, text, attempts"
)


def _claim(sessions: sessionmaker[Session], n: int, now: datetime) -> list[_Claimed]:
    with transaction(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":  # one statement: pick, lock, mark
            driver = session.connection().connection.driver_connection
            with driver.cursor() as cur:  # type: ignore[union-attr]
                found = cur.execute(_CLAIM_PG, {"now": now, "n": n}).fetchall()
            return sorted((_Claimed(i, phone or "", text, attempts) for i, phone, text, attempts in found),
                          key=lambda c: c.id)  # fmt: skip
        claim_writes(session)
        query = (
            select(
                FineNotification.id, FineNotification.phone, FineNotification.text, FineNotification.attempts
            )
            .where(FineNotification.status == "pending", FineNotification.next_attempt_at <= now)
            .order_by(FineNotification.next_attempt_at, FineNotification.id)
            .limit(n)
        )
        rows = [_Claimed(r.id, r.phone or "", r.text, r.attempts + 1) for r in session.execute(query)]
        if rows:
            session.execute(
                update(FineNotification)
                .where(FineNotification.id.in_([r.id for r in rows]))
                .values(status="sending", claimed_at=now, attempts=FineNotification.attempts + 1)
            )
        return rows


def _outcome_values(
    c: _Claimed,
    result: SendResult,
    now: datetime,
    idempotent: bool,
    settings: NotifySettings,
    report: SendReport,
) -> dict[str, Any]:
    if result.outcome is SendOutcome.ACCEPTED:
        report.sent += 1
        first = result.provider_ids[0] if result.provider_ids else None
        return {"status": "sent", "provider_id": first, "sent_at": now, "last_error": ""}
    retry = result.outcome is SendOutcome.REFUSED or idempotent
    if retry and c.attempts < settings.max_attempts:
        report.retry += 1
        return {
            "status": "pending",
            "next_attempt_at": now + backoff(settings, c.attempts),
            "last_error": result.error,
        }
    if retry:
        report.failed += 1
        return {"status": "failed", "next_attempt_at": None, "last_error": result.error}
    report.uncertain += 1
    first = result.provider_ids[0] if result.provider_ids else None
    return {"status": "uncertain", "provider_id": first, "last_error": f"cut off, not resent: {result.error}"}


def _record(
    sessions: sessionmaker[Session],
    claimed: Sequence[_Claimed],
    results: Sequence[SendResult],
    now: datetime,
    gateway: SmsGateway,
    settings: NotifySettings,
    report: SendReport,
) -> None:
    idempotent = gateway.idempotent
    updates: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for c, result in zip(claimed, results, strict=True):
        values = _outcome_values(c, result, now, idempotent, settings, report)
        updates.append({"id": c.id, **values})
        if gateway.receipts:
            parts.extend(
                {"provider_id": pid, "notification_id": c.id, "part": i, "status": "submitted", "detail": ""}
                for i, pid in enumerate(result.provider_ids, start=1)
            )
        if result.outcome is not SendOutcome.ACCEPTED:
            log_event(log, "sms.not_sent", notification=c.id, outcome=result.outcome.value,
                      status=values["status"], error=result.error[:200])  # fmt: skip
    with transaction(sessions) as session:
        for rows in by_shape(updates):
            update_rows(session, FineNotification, rows)
        if parts:
            _lock_receipt_matching(session)
        insert_rows(session, SmsPart, parts, ignore_conflicts=True)  # a centre may give one id twice
        if parts and session.scalar(select(SmsReceipt.id).where(SmsReceipt.applied == False).limit(1)):  # noqa: E712
            _apply_early_receipts(session, [p["provider_id"] for p in parts])


def recover_cut_off(
    sessions: sessionmaker[Session], now: datetime, idempotent: bool, settings: NotifySettings
) -> int:
    """``sending`` rows left by a stopped sender: ``uncertain`` (or ``pending`` for an idempotent gateway)."""
    stale = now - timedelta(seconds=settings.stale_after_s)
    values: dict[str, Any] = (
        {
            "status": "pending",
            "next_attempt_at": now,
            "last_error": "cut off by a stop; sent again (same reference)",
        }
        if idempotent
        else {"status": "uncertain", "last_error": "cut off by a stop while sending; not resent"}
    )
    with transaction(sessions) as session:
        result = session.execute(
            update(FineNotification)
            .where(FineNotification.status == "sending", FineNotification.claimed_at < stale)
            .values(**values)
        )
        count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log_event(log, "sms.cut_off_found", count=count, now_status=values["status"])
    return count


def send_due(
    sessions: sessionmaker[Session],
    gateway: SmsGateway,
    now: Callable[[], datetime],
    settings: NotifySettings = NotifySettings(),
    max_batches: int | None = None,
) -> SendReport:
    """Send every notification that is due now (or ``max_batches`` gateway batches of them)."""
    report = SendReport()
    recover_cut_off(sessions, now(), gateway.idempotent, settings)
    batches = 0
    while max_batches is None or batches < max_batches:
        claimed = _claim(sessions, gateway.batch_size, now())
        if not claimed:
            break
        batches += 1
        messages = [OutgoingSms(f"n{c.id}", c.phone, c.text) for c in claimed]
        try:
            results = gateway.send(messages)
        except Exception as exc:
            log.exception(
                "sms.gateway_failed", extra={"event": "sms.gateway_failed", "error": str(exc)[:300]}
            )
            results = [SendResult(SendOutcome.CUT_OFF, (), f"{type(exc).__name__}: {exc}")] * len(claimed)
        _record(sessions, claimed, results, now(), gateway, settings, report)
    if batches:
        log_event(log, "sms.sent", sent=report.sent, retry=report.retry, failed=report.failed,
                  uncertain=report.uncertain)  # fmt: skip
    return report


def apply_receipt(sessions: sessionmaker[Session], receipt: Receipt, now: datetime) -> bool:
    """Keep a delivery receipt and apply it; False when it names no part we recorded yet (it is applied when
    that part is recorded: a receipt can overtake the record of its own submit)."""
    with transaction(sessions) as session:
        _lock_receipt_matching(session)
        stored = SmsReceipt(provider_id=receipt.message_id[:128], stat=receipt.stat[:16], err=receipt.err[:16],
                            received_at=now, applied=False)  # fmt: skip
        session.add(stored)
        session.flush()
        part = session.scalars(
            select(SmsPart).where(SmsPart.provider_id.in_(id_forms(receipt.message_id)))
        ).first()
        if part is None:
            log_event(log, "sms.receipt.early_or_unknown", message_id=receipt.message_id, stat=receipt.stat)
            return False
        _apply_to_part(session, part, receipt, now)
        stored.applied = True
    return True


def _apply_to_part(session: Session, part: SmsPart, receipt: Receipt, now: datetime) -> None:
    delivered = receipt.delivered
    if delivered is None:
        part.detail = receipt.stat
        return
    part.status = "delivered" if delivered else "undelivered"
    part.receipt_at, part.detail = now, f"{receipt.stat} err:{receipt.err}"
    session.flush()
    states = set(
        session.scalars(select(SmsPart.status).where(SmsPart.notification_id == part.notification_id))
    )
    status = "undelivered" if "undelivered" in states else "delivered" if states == {"delivered"} else None
    if status is not None:
        session.execute(
            update(FineNotification)
            .where(
                and_(
                    FineNotification.id == part.notification_id,
                    FineNotification.status.in_(("sent", "uncertain", "delivered", "undelivered")),
                )
            )
            .values(status=status, receipt_at=now)
        )


def _apply_early_receipts(session: Session, ids: Sequence[str]) -> None:
    """Receipts that came before these parts were recorded."""
    forms = {form: pid for pid in ids for form in id_forms(pid)}
    wanted = list(forms)
    early: list[SmsReceipt] = []
    for i in range(0, len(wanted), 500):
        early.extend(
            session.scalars(
                select(SmsReceipt).where(
                    SmsReceipt.provider_id.in_(wanted[i : i + 500]),
                    SmsReceipt.applied == False,  # noqa: E712
                )
            )
        )
    for r in early:
        part = session.get(SmsPart, forms[r.provider_id])
        if part is not None:
            _apply_to_part(session, part, Receipt(r.provider_id, r.stat, r.err), r.received_at)
            r.applied = True
