"""Everything the stop page shows, read in one transaction: the protocol and its officer, payment, attempts,
settlements, own-card checks, receipt events, bookmarks, the footage windows with their playlists, the
timeline, the latest integrity verdicts, the cases, and (filled by the route) the access audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.cases import Case
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy
from server.db.protocols import Officer, Payment, Protocol
from server.db.supervisors import AccessAudit
from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent
from server.db.video import SegmentVerification
from server.review import words
from server.review.auth import Reviewer
from server.review.cases import cases_of
from server.review.footage import FootageWindow, footage_for
from server.review.roles import Permission, allowed
from server.review.timeline import Event, timeline_events
from server.review.urls import playlist_url
from server.templates import local_time, money_text
from server.video.integrity import Verdict, worst

ROWS = 100


@dataclass
class WindowView:
    window: FootageWindow
    playlist: str
    events: list[Event]
    verdict: Verdict | None  # worst of the latest verifications of its stored segments; None if never checked
    checked_at: datetime | None


@dataclass
class StopView:
    protocol: Protocol
    officer: Officer | None
    payment: Payment | None
    attempts: list[PaymentAttemptCopy]
    settlements: list[PaymentSettlementCopy]
    checks: list[OwnCardCheck]
    receipts: list[ReceiptEvent]
    bookmarks: list[Bookmark]
    windows: list[WindowView]
    events: list[Event]
    verifications: dict[tuple[str, int], SegmentVerification]
    cases: list[Case]
    can_verify: bool
    can_export: bool
    can_handle_cases: bool
    links: dict[str, str] = field(default_factory=dict)
    trail: list[AccessAudit] = field(default_factory=list)

    def segment_keys(self) -> list[tuple[str, int]]:
        return [(s.device_id, s.seq) for w in self.windows for s in w.window.segments]


def _latest_verifications(session: Session, windows: list[FootageWindow]) -> dict[tuple[str, int], SegmentVerification]:
    out: dict[tuple[str, int], SegmentVerification] = {}
    for w in windows:
        seqs = [s.seq for s in w.segments if s.playable]
        if not seqs:
            continue
        rows = session.scalars(
            select(SegmentVerification)
            .where(SegmentVerification.device_id == w.device_id, SegmentVerification.seq.in_(seqs))
            .order_by(SegmentVerification.checked_at, SegmentVerification.id)
        )
        for row in rows:
            out[(row.device_id, row.seq)] = row  # the latest wins
    return out


def load_stop(session: Session, number: str, reviewer: Reviewer) -> StopView | None:
    protocol = session.get(Protocol, number)
    if protocol is None:
        return None
    payment = session.scalar(select(Payment).where(Payment.protocol_number == number))
    attempts = list(session.scalars(select(PaymentAttemptCopy).where(PaymentAttemptCopy.protocol_number == number)
                                    .order_by(PaymentAttemptCopy.started_at).limit(ROWS)))  # fmt: skip
    settlements = list(session.scalars(select(PaymentSettlementCopy).where(PaymentSettlementCopy.protocol_number == number)
                                       .order_by(PaymentSettlementCopy.settled_at).limit(ROWS)))  # fmt: skip
    checks = list(session.scalars(select(OwnCardCheck).where(OwnCardCheck.protocol_number == number)
                                  .order_by(OwnCardCheck.checked_at).limit(ROWS)))  # fmt: skip
    receipts = list(session.scalars(select(ReceiptEvent).where(ReceiptEvent.protocol_number == number)
                                    .order_by(ReceiptEvent.occurred_at, ReceiptEvent.copy_no).limit(ROWS)))  # fmt: skip
    bookmarks = list(session.scalars(select(Bookmark).where(Bookmark.protocol_number == number)
                                     .order_by(Bookmark.started_at).limit(ROWS)))  # fmt: skip
    events = timeline_events(protocol, payment, attempts, checks, receipts, bookmarks)
    windows = footage_for(session, protocol, bookmarks)
    verifications = _latest_verifications(session, windows)
    views = []
    for w in windows:
        kept = [s for s in w.segments if s.status != "deleted"]
        latest = [verifications[(w.device_id, s.seq)] for s in kept if (w.device_id, s.seq) in verifications]
        verdict = None
        if latest:
            found = [Verdict(v.verdict) for v in latest]
            if len(latest) < sum(1 for s in kept if s.playable) or any(not s.playable for s in kept):
                found.append(Verdict.INCOMPLETE)
            verdict = worst(found)
        if len(kept) < len(w.segments):  # some deleted by retention: nothing is left of them to check
            if verdict is not None:
                verdict = worst([verdict, Verdict.DELETED])
            elif not kept:
                verdict = Verdict.DELETED
        inside = [e for e in events if w.start <= e.at <= w.end]
        views.append(WindowView(w, playlist_url(w.device_id, w.start, w.end, number), inside,
                                verdict, max((v.checked_at for v in latest), default=None)))  # fmt: skip
    officer = session.get(Officer, protocol.officer_badge)
    links = {
        "driver": "/review/protocols?" + urlencode({"iin": protocol.driver_iin}),
        "plate": "/review/protocols?" + urlencode({"plate": protocol.vehicle_plate}),
        "officer": "/review/protocols?" + urlencode({"badge": protocol.officer_badge}),
        "day": "/review/protocols?" + urlencode({"date": protocol.offence_date.isoformat()}),
    }
    return StopView(
        protocol, officer, payment, attempts, settlements, checks, receipts, bookmarks, views, events,
        verifications, cases_of(session, number),
        allowed(reviewer.role, Permission.VERIFY), allowed(reviewer.role, Permission.EXPORT),
        allowed(reviewer.role, Permission.CASES), links,
    )  # fmt: skip


def table_rows(stop: StopView, zone: str) -> dict[str, list[tuple[object, ...]]]:
    """The page's tables as rows of words (times local, with the offset)."""
    def t(at: datetime | None) -> str:
        return local_time(at, zone)

    return {
        "event_rows": [(t(e.at), e.label, e.detail) for e in stop.events],
        "attempt_rows": [
            (
                t(a.started_at),
                words.attempt_state(a.state),
                money_text(a.amount_minor, a.currency),
                f"{a.card_scheme} {words.masked_pan(a.masked_pan)}".strip() if a.masked_pan else "—",
                words.terminal_result(a.result_code, a.result_text),
                a.reason or "—",
                f"{a.device_id} · {a.attempt_id[:8]}",
            )
            for a in stop.attempts
        ],
        "settlement_rows": [
            (
                t(x.settled_at),
                x.attempt_id[:8],
                words.SETTLEMENT_OUTCOMES.get(x.outcome, x.outcome),
                words.SETTLEMENT_METHODS.get(x.method, x.method),
                x.evidence,
                x.decided_by or "—",
                x.reason or "—",
            )
            for x in stop.settlements
        ],
        "check_rows": [
            (t(c.checked_at), words.NAME_CHECK.get(c.result, c.result), c.cardholder_name or "—", c.driver_name,
             c.reason, c.attested_by or "—")
            for c in stop.checks
        ],
        "receipt_rows": [(t(r.occurred_at), words.receipt_event(r.event, r.copy_no, r.detail)) for r in stop.receipts],
        "bookmark_rows": [
            (t(b.started_at), t(b.ended_at), words.BOOKMARKS.get(b.label, b.label), b.device_id, b.officer_badge or "—")
            for b in stop.bookmarks
        ],
        "audit_rows": [
            (
                t(a.at),
                a.supervisor_login,
                a.action,
                f"{a.device_id} #{a.seq}" if a.device_id is not None else (a.protocol_number or ""),
                a.client,
                a.session_ref,
            )
            for a in stop.trail
        ],
    }
