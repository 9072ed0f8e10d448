"""Complaints and appeals: a case about one protocol, through its states.

    received ──► under review ──► decided (upheld | rejected | partly upheld) ──► closed

A case may also put a legal hold on its protocol's footage (``place_hold``: the stop's windows, as its page
shows them); the retention run deletes nothing a hold covers until ``release_hold``.

``CaseState`` and ``TRANSITIONS`` are the whole machine: any other move is refused (``CaseError``), a
decision needs its outcome and a text, and every change is one ``review_case_event`` row and one access-audit
row, written in the caller's transaction. While a case of a protocol is not closed, the protocol is
*appealed*: the first open case of a protocol pauses its fine's clocks and the last one closed decides the
appeal (``server.fines.appeals.follow_case``); ``protocol_appeal_open`` answers whether a case is open.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from server.db.cases import Case, CaseEvent, CaseFile
from server.db.protocols import Protocol
from server.db.retention import FootageHold
from server.db.sync import Bookmark
from server.fines.appeals import follow_case
from server.review import audit
from server.review.audit import Actor
from server.review.footage import stop_window


class CaseState(enum.StrEnum):
    RECEIVED = "received"
    UNDER_REVIEW = "under_review"
    DECIDED = "decided"
    CLOSED = "closed"


class Outcome(enum.StrEnum):
    UPHELD = "upheld"
    REJECTED = "rejected"
    PARTLY_UPHELD = "partly_upheld"


class Channel(enum.StrEnum):
    ERAP_APPEAL = "erap_appeal"
    WRITTEN = "written"
    IN_PERSON = "in_person"


TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    CaseState.RECEIVED: frozenset({CaseState.UNDER_REVIEW}),
    CaseState.UNDER_REVIEW: frozenset({CaseState.DECIDED}),
    CaseState.DECIDED: frozenset({CaseState.CLOSED}),
    CaseState.CLOSED: frozenset(),
}
OPEN_STATES = frozenset({CaseState.RECEIVED, CaseState.UNDER_REVIEW, CaseState.DECIDED})

STATE_WORDS = {
    CaseState.RECEIVED: "получена / received",
    CaseState.UNDER_REVIEW: "на рассмотрении / under review",
    CaseState.DECIDED: "решение принято / decided",
    CaseState.CLOSED: "закрыта / closed",
}
OUTCOME_WORDS = {
    Outcome.UPHELD: "удовлетворена / upheld",
    Outcome.REJECTED: "отклонена / rejected",
    Outcome.PARTLY_UPHELD: "удовлетворена частично / partly upheld",
}
CHANNEL_WORDS = {
    Channel.ERAP_APPEAL: "жалоба через ЕРАП / ERAP appeal",
    Channel.WRITTEN: "письменная жалоба / written complaint",
    Channel.IN_PERSON: "личный приём / in person",
}
_REFERENCE = re.compile(r"^[\w./ #№-]{0,64}$")
MAX_TEXT = 10_000


class CaseError(ValueError):
    """A case change that is not allowed; the message says why."""


def check_transition(case_id: int, current: str, to: CaseState) -> CaseState:
    try:
        state = CaseState(current)
    except ValueError as exc:
        raise CaseError(f"case {case_id} is in an unknown state {current!r}") from exc
    if to not in TRANSITIONS[state]:
        allowed = ", ".join(s.value for s in sorted(TRANSITIONS[state])) or "none: it is closed"
        raise CaseError(f"case {case_id} is {state.value}: it cannot move to {to.value} (allowed: {allowed})")
    return state


def protocol_appeal_open(session: Session, protocol_number: str) -> bool:
    """Whether the protocol has a complaint or appeal case that is not closed (the fine lifecycle pauses)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Case.protocol_number == protocol_number,
                    Case.state.in_([s.value for s in OPEN_STATES]),
                )
            )
        )
    )


@dataclass(frozen=True)
class NewCase:
    protocol_number: str
    channel: Channel
    reference: str
    summary: str


def _event(session: Session, case: Case, at: datetime, who: Actor, action: str, text: str = "",
           from_state: str | None = None, to_state: str | None = None) -> None:  # fmt: skip
    session.add(CaseEvent(case_id=case.id, at=at, by_login=who.login, action=action, from_state=from_state,
                          to_state=to_state, text=text[:MAX_TEXT]))  # fmt: skip
    audit.record(
        session, who, f"case.{action}", at, protocol_number=case.protocol_number,
        detail=f"case {case.id}: {from_state or ''}→{to_state or ''} {text}".strip()[:1000],
    )  # fmt: skip


def open_case(session: Session, new: NewCase, who: Actor, at: datetime, client: str = "") -> Case:
    """A new case in state ``received``; ``CaseError`` for an unknown protocol or a bad field."""
    if session.get(Protocol, new.protocol_number) is None:
        raise CaseError(f"протокол {new.protocol_number} не найден / no protocol {new.protocol_number}")
    if not _REFERENCE.fullmatch(new.reference):
        raise CaseError("номер обращения / reference: up to 64 letters, digits, spaces, '.', '/', '-', '#', '№'")
    if new.channel is Channel.ERAP_APPEAL and not new.reference.strip():
        raise CaseError("номер жалобы в ЕРАП / an ERAP appeal needs its appeal number")
    if not new.summary.strip() or len(new.summary) > MAX_TEXT:
        raise CaseError(f"суть обращения / summary: 1-{MAX_TEXT} characters")
    case = Case(
        protocol_number=new.protocol_number, channel=new.channel.value, reference=new.reference.strip(),
        summary=new.summary.strip(), state=CaseState.RECEIVED.value, outcome=None, decision_text="",
        opened_at=at, opened_by=who.login, updated_at=at, closed_at=None,
    )  # fmt: skip
    first = not protocol_appeal_open(session, new.protocol_number)
    session.add(case)
    session.flush()
    if first:
        follow_case(session, case.protocol_number, opened=True, upheld=False, reference=f"case {case.id}", now=at)
    _event(session, case, at, who, "opened", f"{new.channel.value} {case.reference}: {case.summary}",
           None, CaseState.RECEIVED.value)  # fmt: skip
    return case


def move_case(
    session: Session,
    case_id: int,
    to: CaseState,
    who: Actor,
    at: datetime,
    outcome: Outcome | None = None,
    decision_text: str = "",
) -> Case:
    """Move a case along ``TRANSITIONS``; to ``decided`` only with an outcome and a decision text."""
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise CaseError(f"жалоба {case_id} не найдена / no case {case_id}")
    before = check_transition(case_id, case.state, to)
    text = ""
    if to is CaseState.DECIDED:
        if outcome is None:
            raise CaseError("итог / outcome: upheld, rejected or partly upheld")
        if not decision_text.strip() or len(decision_text) > MAX_TEXT:
            raise CaseError(f"текст решения / decision text: 1-{MAX_TEXT} characters")
        case.outcome = outcome.value
        case.decision_text = decision_text.strip()
        text = f"{outcome.value}: {case.decision_text}"
    elif outcome is not None or decision_text.strip():
        raise CaseError("итог и текст решения даются только при решении / outcome and text go with the decision")
    case.state = to.value
    case.updated_at = at
    if to is CaseState.CLOSED:
        case.closed_at = at
        session.flush()
        if not protocol_appeal_open(session, case.protocol_number):
            follow_case(session, case.protocol_number, opened=False, upheld=case.outcome == Outcome.UPHELD.value,
                        reference=f"case {case.id}: {case.outcome}", now=at)  # fmt: skip
    _event(session, case, at, who, "moved", text, before.value, to.value)
    return case


def add_file_record(session: Session, case: Case, stored: CaseFile, who: Actor, at: datetime) -> None:
    if case.state == CaseState.CLOSED.value:
        raise CaseError(f"case {case.id} is closed: no more files")
    session.add(stored)
    session.flush()
    _event(session, case, at, who, "file_added", f"{stored.file_name} ({stored.media_type}, {stored.size} B, sha256 {stored.sha256})")


def cases_of(session: Session, protocol_number: str) -> list[Case]:
    return list(session.scalars(select(Case).where(Case.protocol_number == protocol_number).order_by(Case.opened_at)))


def holds_of(session: Session, case_id: int) -> list[FootageHold]:
    return list(session.scalars(select(FootageHold).where(FootageHold.case_id == case_id).order_by(FootageHold.id)))


def place_hold(session: Session, case_id: int, who: Actor, at: datetime, reason: str = "") -> list[FootageHold]:
    """Put a legal hold on the footage of the case's protocol (one row per device window); ``CaseError`` if
    the case is unknown or already holds its footage."""
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise CaseError(f"жалоба {case_id} не найдена / no case {case_id}")
    if any(h.released_at is None for h in holds_of(session, case_id)):
        raise CaseError(f"case {case_id} already holds its footage: release the hold first")
    if len(reason) > MAX_TEXT:
        raise CaseError(f"основание / reason: at most {MAX_TEXT} characters")
    protocol = session.get(Protocol, case.protocol_number)
    if protocol is None:
        raise CaseError(f"протокол {case.protocol_number} не найден / no protocol {case.protocol_number}")
    bookmarks = list(session.scalars(select(Bookmark).where(Bookmark.protocol_number == protocol.number)))
    holds = [
        FootageHold(case_id=case_id, device_id=device_id, started_at=iv.start, ended_at=iv.end,
                    reason=reason.strip(), placed_at=at, placed_by=who.login[:64])
        for device_id, iv, _ in stop_window(protocol, bookmarks)
    ]  # fmt: skip
    session.add_all(holds)
    session.flush()
    stretches = ", ".join(f"{h.device_id} {h.started_at.isoformat()}..{h.ended_at.isoformat()}" for h in holds)
    _event(session, case, at, who, "hold_placed", f"{stretches} {reason.strip()}".strip())
    return holds


def release_hold(session: Session, case_id: int, who: Actor, at: datetime) -> int:
    """Release the case's legal hold; returns how many stretches it covered. ``CaseError`` if none holds."""
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise CaseError(f"жалоба {case_id} не найдена / no case {case_id}")
    active = [h for h in holds_of(session, case_id) if h.released_at is None]
    if not active:
        raise CaseError(f"case {case_id} holds no footage")
    for hold in active:
        hold.released_at, hold.released_by = at, who.login[:64]
    _event(session, case, at, who, "hold_released", ", ".join(f"{h.device_id} {h.started_at.isoformat()}..{h.ended_at.isoformat()}" for h in active))
    return len(active)
