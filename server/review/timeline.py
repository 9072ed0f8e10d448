"""The stop's events on the footage's clock, in words: the protocol drawn up, each payment attempt's card
read, own-card check, PIN and authorisation, and its end (approved, declined, aborted …), each receipt copy
printed (or not), and the bookmarks. The stop page lists them under the player; clicking one plays the
footage from that moment. Pure: built from the synced rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from server.db.payment_attempts import PaymentAttemptCopy
from server.db.protocols import Payment, Protocol
from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent
from server.review.words import (
    BOOKMARKS,
    NAME_CHECK,
    attempt_state,
    receipt_event,
    terminal_result,
    unknown,
)

# How each attempt ended, as the timeline shows it.
ENDINGS = {
    "paid": ("approved", "одобрено, оплачено / approved, paid"),
    "result_persisted": ("approved", "одобрено / approved"),
    "declined": ("declined", "отклонено / declined"),
    "aborted": ("aborted", "прервано / aborted"),
    "abandoned": ("aborted", "брошено до авторизации / abandoned"),
    "card_failed": ("aborted", "карта не считана / card not read"),
    "refused": ("declined", "отказ: карта не водителя / refused: not the driver's card"),
    "reversed": ("declined", "отменено, не списано / reversed, not charged"),
    "not_charged": ("declined", "не списано / not charged"),
    "failed": ("aborted", "не состоялась / failed"),
    "in_doubt": ("doubt", "под вопросом / in doubt"),
}


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str  # protocol | card | check | pin | approved | declined | aborted | doubt | receipt | bookmark
    label: str
    detail: str = ""


def _attempt_events(a: PaymentAttemptCopy) -> list[Event]:
    events = []
    if a.card_read_at is not None:
        card = f"{a.card_scheme} •••• {a.masked_pan[-4:]}".strip() if a.masked_pan else ""
        events.append(Event(a.card_read_at, "card", "карта считана / card read", card))
    if a.authorising_at is not None:
        events.append(
            Event(a.authorising_at, "pin", "ввод ПИН, авторизация / PIN entry, authorisation", f"попытка / attempt {a.attempt_id[:8]}")
        )
    kind, words = ENDINGS.get(a.state, ("doubt", attempt_state(a.state)))
    detail = "; ".join(x for x in (terminal_result(a.result_code, a.result_text) if a.result_code is not None else "", a.reason) if x)
    events.append(Event(a.updated_at, kind, words, detail))
    return events


def timeline_events(
    protocol: Protocol,
    payment: Payment | None,
    attempts: Sequence[PaymentAttemptCopy],
    checks: Sequence[OwnCardCheck],
    receipts: Sequence[ReceiptEvent],
    bookmarks: Sequence[Bookmark],
) -> list[Event]:
    """Every event of the stop, in time order (see the module docstring)."""
    events = [Event(protocol.created_at, "protocol", "протокол составлен / protocol drawn up", f"{protocol.article}")]
    for a in attempts:
        events.extend(_attempt_events(a))
    if payment is not None and not any(a.state in ("paid", "result_persisted") for a in attempts):
        events.append(Event(payment.approved_at, "approved", "одобрено, оплачено / approved, paid", payment.auth_code))
    for c in checks:
        result = NAME_CHECK.get(c.result, unknown(c.result))
        events.append(Event(c.checked_at, "check", f"проверка своей карты: {result} / own-card check", c.cardholder_name or ""))
    for r in receipts:
        if r.event in ("printed", "failed", "reprint_requested"):
            events.append(Event(r.occurred_at, "receipt", receipt_event(r.event, r.copy_no, r.detail)))
    for b in bookmarks:
        events.append(Event(b.started_at, "bookmark", f"закладка: {BOOKMARKS.get(b.label, b.label)} / bookmark", b.officer_badge or ""))
    return sorted(events, key=lambda e: e.at)
