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

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from core.fines.enforcement_document import sign_fields
from core.fines.lifecycle_engine import FineFacts, Happening, HappeningKind, amount_due
from core.fines.lifecycle_rules import Action, LifecycleRules
from core.fines.notice_text import NoticeValues, render
from core.sync.signing import Signer
from server.db.fine_enforcement import EnforcementDocument
from server.db.fine_notices import FineNotification, PostalNotice, Publication
from server.db.fine_payments import RefundCase
from server.db.fines import Fine, FineEvent
from server.fines.bulk_sql import by_shape, insert_rows, update_rows
from server.fines.fine_record import FineRow


@dataclass(frozen=True)
class ClassWrite:
    """Fines that had the same facts and so went through the same steps: one UPDATE and one INSERT of history
    per happening for all of them (``columns`` are the same for each; ``state_since`` follows the old state)."""

    ids: list[int]
    columns: dict[str, Any]
    happenings: tuple[Happening, ...]


@dataclass
class Changes:
    classes: list[ClassWrite] = field(default_factory=list)
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
        """How many things happened (errors not counted)."""
        by_class = sum(len(c.ids) * len(c.happenings) for c in self.classes)
        return by_class + sum(1 for e in self.events if e["kind"] != "error")

    @property
    def errors(self) -> int:
        return sum(1 for e in self.events if e["kind"] == "error")


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
    paid_on = facts.anchors.get("paid")
    fields = {
        "kind": kind,
        "document_no": f"{row.number}/{kind}",
        "jurisdiction": row.jurisdiction,
        "made_on": made_on.isoformat(),
        "fine_number": row.number,
        "article": row.article,
        "offence_date": row.offence_date.isoformat(),
        "issued_on": row.issued_on.isoformat(),
        "person_id": row.person_id,
        "person_name": row.person_name,
        "plate": row.plate,
        "currency": row.currency,
        "full_minor": row.full_minor,
        "surcharge_minor": facts.surcharge_minor,
        "amount_minor": amount_minor,
        "paid_on": paid_on.isoformat() if paid_on else None,
        "rules": row.rules,
        "tariff": row.tariff,
        "basis": basis,
    }
    text, digest, sig = sign_fields(signer, fields)
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
    with_history: bool = True,
) -> None:
    """Add the rows that ``happenings`` (already applied, giving ``facts``) call for (and their history rows
    unless ``with_history`` is False: a ``ClassWrite`` writes those)."""
    for h in happenings:
        if with_history:
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


# One statement per batch for all classes: row arrays (id, class number) and class arrays read by subscript.
_CLASSES_UPDATE_PG = (
    "UPDATE fine SET state = (%(state)b::varchar[])[v.c], anchors = (%(anchors)b::text[])[v.c], "
    "surcharge_minor = (%(surcharge)b::bigint[])[v.c], unpaid = (%(unpaid)b::boolean[])[v.c], "
    "due_minor = (%(due)b::bigint[])[v.c], next_on = (%(next_on)b::date[])[v.c], "
    "state_since = CASE WHEN fine.state = (%(state)b::varchar[])[v.c] THEN fine.state_since ELSE %(day)s END, "
    "updated_at = %(now)s, error = '' "
    "FROM unnest(%(ids)b::bigint[], %(cls)b::int[]) AS v(id, c) WHERE fine.id = v.id"
)
_CLASSES_EVENTS_PG = (
    "INSERT INTO fine_event (fine_id, at, happened_on, kind, step, from_state, to_state, detail) "
    "SELECT v.id, %(now)s, (%(on)b::date[])[v.h], (%(kind)b::varchar[])[v.h], (%(step)b::varchar[])[v.h], "
    "(%(from)b::varchar[])[v.h], (%(to)b::varchar[])[v.h], (%(detail)b::text[])[v.h] "
    "FROM unnest(%(ids)b::bigint[], %(hs)b::int[]) AS v(id, h)"
)


def _write_classes(session: Session, classes: list[ClassWrite], day: date, now: datetime) -> None:
    if session.get_bind().dialect.name != "postgresql":
        for c in classes:
            _write_class_sqlite(session, c, day, now)
        return
    ids, cls, hids, hs = [], [], [], []
    happenings: list[Happening] = []
    for n, c in enumerate(classes, start=1):
        ids.extend(c.ids)
        cls.extend([n] * len(c.ids))
        for h in c.happenings:
            happenings.append(h)
            hids.extend(c.ids)
            hs.extend([len(happenings)] * len(c.ids))
    col = [c.columns for c in classes]
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(
            _CLASSES_UPDATE_PG,
            {"state": [c["state"] for c in col], "anchors": [c["anchors"] for c in col],
             "surcharge": [c["surcharge_minor"] for c in col], "unpaid": [c["unpaid"] for c in col],
             "due": [c["due_minor"] for c in col], "next_on": [c["next_on"] for c in col], "day": day,
             "now": now, "ids": ids, "cls": cls},
        )  # fmt: skip
        if happenings:
            cur.execute(
                _CLASSES_EVENTS_PG,
                {"now": now, "on": [h.on for h in happenings], "kind": [h.kind.value for h in happenings],
                 "step": [h.step for h in happenings], "from": [h.from_state.value for h in happenings],
                 "to": [h.to_state.value for h in happenings], "detail": [h.detail[:2000] for h in happenings],
                 "ids": hids, "hs": hs},
            )  # fmt: skip


def _write_class_sqlite(session: Session, c: ClassWrite, day: date, now: datetime) -> None:
    col = c.columns
    for i in range(0, len(c.ids), 500):
        chunk = c.ids[i : i + 500]
        session.execute(
            update(Fine)
            .where(Fine.id.in_(chunk))
            .values(
                **{
                    k: col[k]
                    for k in ("state", "anchors", "surcharge_minor", "unpaid", "due_minor", "next_on")
                },
                state_since=case((Fine.state == col["state"], Fine.state_since), else_=day),
                updated_at=now,
                error="",
            )
        )
    rows = [event_row(fine_id, h, now) for h in c.happenings for fine_id in c.ids]
    insert_rows(session, FineEvent, rows)


def write(session: Session, changes: Changes, day: date | None = None, now: datetime | None = None) -> None:
    """Write everything collected, in the caller's transaction: one statement per table and row shape."""
    if changes.classes:
        assert day is not None and now is not None, "class writes need the run's day and time"
        _write_classes(session, changes.classes, day, now)
    for rows in by_shape(changes.fines):
        update_rows(session, Fine, rows)
    for model, table_rows in (
        (FineEvent, changes.events),
        (FineNotification, changes.notifications),
        (PostalNotice, changes.notices),
        (Publication, changes.publications),
        (EnforcementDocument, changes.documents),
        (RefundCase, changes.refunds),
    ):
        for rows in by_shape(table_rows):
            insert_rows(session, model, rows)
    outcomes = [
        {"fine_id": o["fine_id"], "step": o["step"], "status": o["status"], "outcome_on": o["outcome_on"],
         "outcome_source": o["source"]}
        for o in changes.notice_outcomes
    ]  # fmt: skip
    update_rows(session, PostalNotice, outcomes, keys=("fine_id", "step"))
    update_rows(session, Publication, changes.deemed, keys=("fine_id",))
