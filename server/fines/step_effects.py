"""What a fine's happenings leave behind, collected for a batch of fines and written in bulk: the fine's new
columns, one history row per happening, and per action the row that carries it out later: an SMS
notification (recorded before it is sent, ``UNIQUE (fine, step)``), a postal notice, a publication entry, a
signed enforcement or recall document. Everything for a batch is written in the caller's transaction, so a
run cut off in the middle leaves each fine either wholly before or wholly after its steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, insert, update
from sqlalchemy.orm import Session

from core.fines.enforcement_document import EnforcementDocumentBody, sign_document
from core.fines.lifecycle_engine import FineFacts, Happening, HappeningKind, amount_due
from core.fines.lifecycle_rules import Action, LifecycleRules
from core.fines.notice_text import NoticeValues, render
from core.sync.signing import Signer
from server.db.fine_enforcement import EnforcementDocument
from server.db.fine_notices import FineNotification, PostalNotice, Publication
from server.db.fine_payments import RefundCase
from server.db.fines import Fine, FineEvent
from server.fines.fine_record import FineRow


@dataclass
class Changes:
    fines: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    notice_outcomes: list[dict[str, Any]] = field(default_factory=list)
    publications: list[dict[str, Any]] = field(default_factory=list)
    deemed: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def happenings(self) -> int:
        return len(self.events)


def event_row(fine_id: int, h: Happening, now: datetime) -> dict[str, Any]:
    return {
        "fine_id": fine_id,
        "at": now,
        "happened_on": h.on,
        "kind": h.kind.value,
        "step": h.step,
        "from_state": h.from_state.value,
        "to_state": h.to_state.value,
        "detail": h.detail[:2000],
    }


def _sms_text(row: FineRow, rules: LifecycleRules, facts: FineFacts, template: str, h: Happening) -> str:
    values = NoticeValues(
        number=row.number,
        plate=row.plate,
        amount=row.money(amount_due(rules, facts, h.on).minor),
        full_amount=row.money(row.full_minor),
        reduced_amount=row.money(row.reduced_minor),
        discount_until=row.discount_deadline,
        pay_by=h.deadline,
        surcharge=row.money(facts.surcharge_minor),
    )
    return render(rules, template, values)


def document_row(
    row: FineRow, kind: str, made_on: date, amount_minor: int, facts: FineFacts, basis: str, signer: Signer,
    now: datetime,
) -> dict[str, Any]:  # fmt: skip
    body = EnforcementDocumentBody(
        kind=kind,
        document_no=f"{row.number}/{kind}",
        jurisdiction=row.jurisdiction,
        made_on=made_on,
        fine_number=row.number,
        article=row.article,
        offence_date=row.offence_date,
        issued_on=row.issued_on,
        person_id=row.person_id,
        person_name=row.person_name,
        plate=row.plate,
        currency=row.currency,
        full_minor=row.full_minor,
        surcharge_minor=facts.surcharge_minor,
        amount_minor=amount_minor,
        paid_on=facts.anchors.get("paid"),
        rules=row.rules,
        tariff=row.tariff,
        basis=basis,
    )
    text, digest, sig = sign_document(signer, body)
    return {
        "fine_id": row.id,
        "kind": kind,
        "batch_id": None,
        "jurisdiction": row.jurisdiction,
        "made_on": made_on,
        "body": text,
        "sha256": digest,
        "sig": sig,
        "kid": signer.kid,
        "created_at": now,
    }


def record(
    changes: Changes,
    row: FineRow,
    rules: LifecycleRules,
    happenings: tuple[Happening, ...],
    facts: FineFacts,
    phones: Mapping[str, str],
    signer: Signer,
    now: datetime,
) -> None:
    """Add the rows that ``happenings`` (already applied, giving ``facts``) call for."""
    for h in happenings:
        changes.events.append(event_row(row.id, h, now))
        if h.kind is HappeningKind.NOTICE_TIMEOUT and h.step:
            changes.notice_outcomes.append(
                {
                    "fine_id": row.id,
                    "step": h.step,
                    "status": "undelivered",
                    "outcome_on": h.on,
                    "source": "timeout",
                }
            )
        if h.kind is not HappeningKind.STEP or h.step is None:
            continue
        step = rules.step(h.step)
        for action in h.actions:
            if action is Action.SMS and step.template is not None:
                phone = row.phone or phones.get(row.person_id)
                changes.notifications.append(
                    {
                        "fine_id": row.id,
                        "step": h.step,
                        "phone": phone,
                        "text": _sms_text(row, rules, facts, step.template, h),
                        "status": "pending" if phone else "no_phone",
                        "attempts": 0,
                        "next_attempt_at": now if phone else None,
                        "created_at": now,
                        "last_error": "" if phone else "no phone number for this person",
                    }
                )
            elif action is Action.POSTAL_NOTICE:
                changes.notices.append(
                    {
                        "fine_id": row.id,
                        "step": h.step,
                        "sent_on": h.on,
                        "status": "sent",
                        "outcome_source": "",
                    }
                )
            elif action is Action.PUBLISH:
                changes.publications.append({"fine_id": row.id, "published_on": h.on, "deemed_on": None})
            elif action is Action.DEEM_DELIVERED:
                changes.deemed.append({"fine_id": row.id, "deemed_on": h.on})
            elif action is Action.HANDOVER:
                due = amount_due(rules, facts, h.on).minor
                basis = f"{rules.label}, step {h.step}" + (f" ({step.source})" if step.source else "")
                changes.documents.append(
                    document_row(row, "enforcement", h.on, due, facts, basis, signer, now)
                )
            elif action is Action.RECALL:
                basis = f"{rules.label}, step {h.step}: paid after the hand-over"
                changes.documents.append(
                    document_row(row, "recall", h.on, row.paid_minor, facts, basis, signer, now)
                )


def write(session: Session, changes: Changes) -> None:
    """Write everything collected, in the caller's transaction."""
    if changes.fines:
        session.execute(update(Fine), changes.fines)
    for table, rows in (
        (FineEvent, changes.events),
        (FineNotification, changes.notifications),
        (PostalNotice, changes.notices),
        (Publication, changes.publications),
        (EnforcementDocument, changes.documents),
        (RefundCase, changes.refunds),
    ):
        if rows:
            session.execute(insert(table), rows)
    for o in changes.notice_outcomes:
        session.execute(
            update(PostalNotice)
            .where(and_(PostalNotice.fine_id == o["fine_id"], PostalNotice.step == o["step"]))
            .values(status=o["status"], outcome_on=o["outcome_on"], outcome_source=o["source"])
        )
    for d in changes.deemed:
        session.execute(
            update(Publication).where(Publication.fine_id == d["fine_id"]).values(deemed_on=d["deemed_on"])
        )
