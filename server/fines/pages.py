"""The back-office pages of the fine lifecycle: each function builds a page's context from the database and
``render`` fills a Jinja2 template of ``server/fines/templates`` (autoescaped; no HTML in Python).

Pages: fines by state with counts (and the daily runs, SMS states, open refund cases), a list of fines in a
state, one fine's whole history (steps, SMS with their delivery, postal notices, publication, payments,
appeals, refund cases, documents), the hand-over batches and a printable batch, the reconciliation reports,
and the publication list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.fines.fine_state import FineState
from core.iin import mask_iin
from core.money import Money, currency
from server.db.fine_enforcement import EnforcementBatch, EnforcementDocument
from server.db.fine_notices import FineNotification, PostalNotice, Publication
from server.db.fine_payments import ProviderPayment, ReconciliationItem, ReconciliationReport, RefundCase
from server.db.fines import Fine, FineEvent, FineRun
from server.db.protocols import Payment
from server.fines import enforcement
from server.fines.publication_list import publications

STATE_ORDER = {s.value: i for i, s in enumerate(FineState)}
PER_PAGE = 50


def _money(minor: int | None, code: str | None) -> str:
    if minor is None or code is None:
        return ""
    try:
        return Money(int(minor), currency(code)).format()
    except ValueError:
        return f"{minor} {code}"


ENV = Environment(
    loader=PackageLoader("server.fines", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["money"] = _money


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def overview(session: Session) -> dict[str, Any]:
    rows = session.execute(
        select(
            Fine.jurisdiction, Fine.state, func.count(), func.sum(Fine.due_minor), func.min(Fine.currency)
        ).group_by(Fine.jurisdiction, Fine.state)
    ).all()
    counts: dict[str, list[dict[str, Any]]] = {}
    for jurisdiction, state, n, due, cur in sorted(rows, key=lambda r: (r[0], STATE_ORDER.get(r[1], 99))):
        counts.setdefault(jurisdiction, []).append(
            {"state": state, "count": n, "due": int(due or 0), "currency": cur}
        )
    notifications = session.execute(
        select(FineNotification.status, func.count())
        .group_by(FineNotification.status)
        .order_by(FineNotification.status)
    ).all()
    open_refunds = session.scalar(
        select(func.count()).select_from(RefundCase).where(RefundCase.status == "open")
    )
    runs = session.scalars(select(FineRun).order_by(FineRun.id.desc()).limit(10)).all()
    return {"counts": counts, "notifications": notifications, "open_refunds": open_refunds or 0, "runs": runs}


@dataclass(frozen=True)
class ListQuery:
    jurisdiction: str | None
    state: str | None
    page: int


def fine_list(session: Session, q: ListQuery) -> dict[str, Any]:
    query = select(
        Fine.number, Fine.person_id, Fine.plate, Fine.issued_on, Fine.state, Fine.state_since, Fine.due_minor,
        Fine.currency, Fine.next_on,
    )  # fmt: skip
    if q.jurisdiction:
        query = query.where(Fine.jurisdiction == q.jurisdiction)
    if q.state:
        query = query.where(Fine.state == q.state)
    rows = session.execute(query.order_by(Fine.id).offset((q.page - 1) * PER_PAGE).limit(PER_PAGE + 1)).all()
    fines = [
        {"number": r.number, "person": mask_iin(r.person_id) if len(r.person_id) == 12 else r.person_id[:3] + "…",
         "plate": r.plate, "issued_on": r.issued_on, "state": r.state, "state_since": r.state_since,
         "due_minor": r.due_minor, "currency": r.currency, "next_on": r.next_on}
        for r in rows[:PER_PAGE]
    ]  # fmt: skip
    return {"fines": fines, "more": len(rows) > PER_PAGE, "page": q.page, "jurisdiction": q.jurisdiction,
            "selected_state": q.state}  # fmt: skip


def fine_history(session: Session, number: str) -> dict[str, Any] | None:
    fine = session.scalars(select(Fine).where(Fine.number == number)).first()
    if fine is None:
        return None
    events = session.scalars(
        select(FineEvent).where(FineEvent.fine_id == fine.id).order_by(FineEvent.id)
    ).all()
    notifications = session.scalars(
        select(FineNotification).where(FineNotification.fine_id == fine.id).order_by(FineNotification.id)
    ).all()
    notices = session.scalars(
        select(PostalNotice).where(PostalNotice.fine_id == fine.id).order_by(PostalNotice.id)
    ).all()
    payments: list[dict[str, Any]] = []
    for p in session.scalars(select(Payment).where(Payment.protocol_number == fine.number)):
        payments.append({"channel": f"card on the spot ({p.masked_pan})", "reference": p.id,
                         "value_date": p.approved_at.date(), "amount_minor": p.amount_minor, "currency": p.currency,
                         "outcome": p.status, "reason": ""})  # fmt: skip
    for pp in session.scalars(
        select(ProviderPayment).where(ProviderPayment.fine_number == fine.number).order_by(ProviderPayment.id)
    ):
        payments.append({"channel": pp.provider, "reference": pp.reference, "value_date": pp.value_date,
                         "amount_minor": pp.amount_minor, "currency": pp.currency, "outcome": pp.outcome,
                         "reason": pp.reason})  # fmt: skip
    refunds = session.scalars(
        select(RefundCase).where(RefundCase.fine_id == fine.id).order_by(RefundCase.id)
    ).all()
    documents = session.scalars(
        select(EnforcementDocument)
        .where(EnforcementDocument.fine_id == fine.id)
        .order_by(EnforcementDocument.id)
    ).all()
    return {
        "fine": fine,
        "events": events,
        "notifications": notifications,
        "notices": notices,
        "publication": session.get(Publication, fine.id),
        "payments": payments,
        "refunds": refunds,
        "documents": documents,
        "pauses": json.loads(fine.pauses),
    }


def batches(session: Session) -> dict[str, Any]:
    kinds = enforcement.batch_counts(session)
    rows = session.scalars(select(EnforcementBatch).order_by(EnforcementBatch.id.desc()).limit(500)).all()
    return {"batches": [{"kinds": kinds.get(b.id, {}), **{c: getattr(b, c) for c in (
        "id", "jurisdiction", "made_on", "acknowledged_at", "acknowledged_by", "ack_reference")}} for b in rows]}  # fmt: skip


def batch(session: Session, batch_id: int) -> dict[str, Any] | None:
    found = enforcement.batch_with_documents(session, batch_id)
    if found is None:
        return None
    batch, docs = found
    return {
        "batch": batch,
        "documents": [{"body": json.loads(d.body), "sha256": d.sha256, "sig": d.sig} for d in docs],
        "kid": docs[0].kid if docs else "",
    }


def reports(session: Session) -> dict[str, Any]:
    return {
        "reports": session.scalars(
            select(ReconciliationReport).order_by(ReconciliationReport.id.desc()).limit(500)
        ).all()
    }


def report(session: Session, report_id: int) -> dict[str, Any] | None:
    found = session.get(ReconciliationReport, report_id)
    if found is None:
        return None
    items = session.scalars(
        select(ReconciliationItem)
        .where(ReconciliationItem.report_id == report_id)
        .order_by(ReconciliationItem.id)
    ).all()
    return {"report": found, "items": items}


def publication_page(session: Session, since: date | None, until: date | None) -> dict[str, Any]:
    return {"rows": publications(session, since, until, limit=5000)}
