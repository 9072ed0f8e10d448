"""Making fines: one from every synced protocol with a fine, and imported ones (camera systems).

**From protocols.** The ingest calls ``fines_for_synced_protocols`` once per batch with the protocol rows it
stored (new ones and status changes). A new protocol with a monetary fine becomes a fine under the current
rules of its jurisdiction (snapshotted); a protocol whose status says ``paid`` settles its fine with the
device's card payment (an amount that does not fit, or a second payment, opens a refund case); ``cancelled``
cancels it. The hook runs under a savepoint and never fails the ingest: if it cannot make a fine, it logs
why, and the daily run's sweep (``sweep_protocols``) makes it later from the ``protocol`` table.

**Imports.** ``import_fines`` takes fines from other systems (e.g. Georgia's video fines). Amounts come from
the jurisdiction's tariff dataset, never from the sender; the person's id is checked (KZ: a valid IIN; GE: 11
digits). Sending the same fine again is harmless (``duplicate``); the same number with other content is a
``conflict``. Nothing of a refused item is stored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import and_, insert, or_, select
from sqlalchemy.orm import Session

from core.fines import FineError, load_jurisdiction, reduced_fine
from core.fines.errors import NotPayableOnSpot
from core.fines.fine_state import FineState
from core.fines.lifecycle_engine import (
    FineFacts,
    Happening,
    PaymentOutcome,
    cancel,
    new_fine,
    settle,
)
from core.fines.lifecycle_rules import LifecycleRules
from core.fines.tariff import fine_for
from core.iin import InvalidIin, parse_iin
from core.structured_log import log_event
from server.db.fine_payments import RefundCase
from server.db.fines import Fine
from server.db.protocols import Payment, Protocol
from server.fines.bulk_sql import insert_rows
from server.fines.fine_record import FineRow, columns_after, facts_of, rows_of, select_rows
from server.fines.rules_book import calendar_for, current_rules, local_day, rules_by_label
from server.fines.step_effects import Changes, event_row, write

log = logging.getLogger(__name__)
PROTOCOL_SOURCE = "protocol"
NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./_-]{0,63}$")
SOURCE = re.compile(r"^[a-z][a-z0-9_.:-]{0,31}$")


@dataclass
class IssueCounts:
    created: int = 0
    paid: int = 0
    cancelled: int = 0
    refunds: int = 0


def fines_for_synced_protocols(
    session: Session, now: datetime, protocols: Sequence[Mapping[str, Any]]
) -> None:
    """The ingest's hook: fines for the protocols of one batch, in its transaction, never failing it."""
    if not protocols:
        return
    try:
        with session.begin_nested():
            issue_from_protocols(session, now, protocols)
    except Exception as exc:
        log.exception("fines.issue_failed", extra={"event": "fines.issue_failed", "error": str(exc)[:300]})


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _existing(session: Session, numbers: Sequence[str]) -> dict[str, FineRow]:
    found: dict[str, FineRow] = {}
    for chunk in _chunks(sorted(set(numbers))):
        for row in rows_of(session.execute(select_rows().where(Fine.number.in_(chunk))).all()):
            found[row.number] = row
    return found


def _device_payments(session: Session, numbers: Sequence[str]) -> dict[str, tuple[str, int, datetime]]:
    found: dict[str, tuple[str, int, datetime]] = {}
    for chunk in _chunks(sorted(set(numbers))):
        rows = session.execute(
            select(Payment.protocol_number, Payment.id, Payment.amount_minor, Payment.approved_at).where(
                Payment.protocol_number.in_(chunk), Payment.status == "approved"
            )
        )
        for number, pid, amount, at in rows:
            found[number] = (pid, int(amount), at)
    return found


def _refund_cases_for(session: Session, payment_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(set(payment_ids))):
        found.update(
            session.scalars(
                select(RefundCase.device_payment_id).where(RefundCase.device_payment_id.in_(chunk))
            )
        )
    return found


@dataclass
class _Status:
    """A protocol's status applied to its fine: the facts after, what happened, money to give back."""

    facts: FineFacts
    paid_ref: str
    paid_minor: int
    happenings: list[Happening]
    refunds: list[dict[str, Any]]


def refund_row(
    reason: str, amount_minor: int, currency: str, now: datetime, note: str, **refs: Any
) -> dict[str, Any]:
    return {
        "fine_id": refs.get("fine_id"),
        "provider_payment_id": refs.get("provider_payment_id"),
        "device_payment_id": refs.get("device_payment_id"),
        "reason": reason,
        "amount_minor": amount_minor,
        "currency": currency,
        "status": "open",
        "opened_at": now,
        "closed_at": None,
        "note": note[:2000],
    }


def _apply_status(
    rules: LifecycleRules,
    p: Mapping[str, Any],
    facts: FineFacts,
    paid_ref: str,
    paid_minor: int,
    payments: Mapping[str, tuple[str, int, datetime]],
    refunded: set[str],
    now: datetime,
    counts: IssueCounts,
) -> _Status:
    """What the protocol's status says about its fine: ``cancelled`` cancels it, ``paid`` settles it with the
    device's card payment (once: the payment's id is kept as ``paid_ref``)."""
    out = _Status(facts, paid_ref, paid_minor, [], [])
    number = p["number"]
    if p.get("status") == "cancelled":
        try:
            out.facts, h = cancel(facts, p["offence_date"], "protocol cancelled on the device")
        except FineError as exc:
            log_event(log, "fines.cancel_refused", fine=number, error=str(exc))
            return out
        if h is not None:
            out.happenings.append(h)
            counts.cancelled += 1
        return out
    payment = payments.get(number) if p.get("status") == "paid" else None
    if payment is None:
        return out
    pid, amount, approved_at = payment
    ref = f"device:{pid}"
    if paid_ref == ref or pid in refunded:
        return out
    s = settle(rules, facts, local_day(rules, approved_at), amount)
    note = f"card payment {pid} on the spot"
    if s.outcome is PaymentOutcome.APPLIED:
        out.facts, out.paid_ref, out.paid_minor = s.facts, ref, s.applied_minor
        if s.happening is not None:
            out.happenings.append(s.happening)
        counts.paid += 1
    if s.refund_minor:
        reason = s.reason.value if s.reason else "refund"
        out.refunds.append(
            refund_row(reason, s.refund_minor, p["currency"], now, note, device_payment_id=pid)
        )
    return out


def _phone_of(p: Mapping[str, Any]) -> str | None:
    """The protocol's optional phone for notices (a later protocol record version carries it)."""
    from server.fines.contacts import ContactError, normalise_phone

    raw = p.get("phone") or p.get("driver_phone")
    if not raw:
        return None
    try:
        return normalise_phone(str(raw))
    except ContactError:
        return None


def issue_from_protocols(
    session: Session, now: datetime, protocols: Sequence[Mapping[str, Any]]
) -> IssueCounts:
    """Fines for ``protocols`` (dicts with the protocol record's fields); idempotent."""
    counts = IssueCounts()
    latest = {p["number"]: p for p in protocols if int(p.get("full_minor") or 0) > 0}
    if not latest:
        return counts
    existing = _existing(session, list(latest))
    paid_numbers = [n for n, p in latest.items() if p.get("status") == "paid"]
    payments = _device_payments(session, paid_numbers) if paid_numbers else {}
    refunded = _refund_cases_for(session, [v[0] for v in payments.values()]) if payments else set()
    changes = Changes()
    fresh: list[tuple[dict[str, Any], list[Happening], list[dict[str, Any]]]] = []
    for number, p in latest.items():
        row = existing.get(number)
        if row is not None:
            rules = rules_by_label(session, row.rules)
            st = _apply_status(
                rules, p, facts_of(row), row.paid_ref, row.paid_minor, payments, refunded, now, counts
            )
            if not st.happenings and not st.refunds:
                continue
            today = local_day(rules, now)
            columns = columns_after(
                row.state, row.state_since, st.facts, rules, today, calendar_for(row.jurisdiction), now
            )
            changes.fines.append(
                {"id": row.id, **columns, "paid_ref": st.paid_ref, "paid_minor": st.paid_minor}
            )
            changes.events.extend(event_row(row.id, h, now) for h in st.happenings)
            changes.refunds.extend({**r, "fine_id": row.id} for r in st.refunds)
            continue
        rules = current_rules(session, p["jurisdiction"], now)
        issued_on: date = p["offence_date"]
        facts, created = new_fine(
            issued_on, p["discount_deadline"], int(p["full_minor"]), int(p["reduced_minor"])
        )
        st = _apply_status(rules, p, facts, "", 0, payments, refunded, now, counts)
        today = local_day(rules, now)
        columns = columns_after(
            FineState.ISSUED.value, issued_on, st.facts, rules, today, calendar_for(rules.jurisdiction), now
        )
        values = {
            "number": number,
            "source": PROTOCOL_SOURCE,
            "jurisdiction": p["jurisdiction"],
            "rules": rules.label,
            "tariff": str(p.get("dataset_version") or "")[:64],
            "person_id": str(p.get("driver_iin") or "")[:16],
            "person_name": str(p.get("driver_name") or "")[:200],
            "plate": str(p.get("vehicle_plate") or "")[:16],
            "phone": _phone_of(p),
            "article": p["article"],
            "offence_date": issued_on,
            "issued_on": issued_on,
            "currency": p["currency"],
            "full_minor": int(p["full_minor"]),
            "reduced_minor": int(p["reduced_minor"]),
            "discount_deadline": p["discount_deadline"],
            "paid_minor": st.paid_minor,
            "paid_ref": st.paid_ref,
            "created_at": now,
            **columns,
        }
        fresh.append((values, [created, *st.happenings], st.refunds))
        counts.created += 1
    if fresh:  # one INSERT … RETURNING for all new fines of the batch
        made = insert_rows(session, Fine, [f[0] for f in fresh], returning=("id", "number"))
        ids = {number: fine_id for fine_id, number in made}
        for values, happenings, refunds in fresh:
            fine_id = ids[values["number"]]
            changes.events.extend(event_row(fine_id, h, now) for h in happenings)
            changes.refunds.extend({**r, "fine_id": fine_id} for r in refunds)
    write(session, changes)
    counts.refunds = len(changes.refunds)
    if counts.created or counts.paid or counts.cancelled or counts.refunds:
        log_event(
            log, "fines.issued", created=counts.created, paid=counts.paid, cancelled=counts.cancelled,
            refunds=counts.refunds,
        )  # fmt: skip
    return counts


_PROTOCOL_FIELDS = (
    "number", "jurisdiction", "article", "offence_date", "driver_name", "driver_iin", "vehicle_plate", "currency",
    "full_minor", "reduced_minor", "discount_deadline", "dataset_version", "status",
)  # fmt: skip


def sweep_protocols(
    session: Session, now: datetime, after: str = "", limit: int = 2000
) -> tuple[IssueCounts, str | None]:
    """Protocols the hook missed: without a fine, or paid / cancelled while their fine still owes. Looks at
    up to ``limit`` of them with numbers after ``after``; returns what it did and where to go on (None: done)."""
    missing = (
        select(*(getattr(Protocol, f) for f in _PROTOCOL_FIELDS))
        .outerjoin(Fine, Fine.number == Protocol.number)
        .where(
            Protocol.full_minor > 0,
            or_(
                Fine.id.is_(None),
                and_(Protocol.status == "paid", Fine.paid_ref == "", Fine.unpaid.is_(True)),
                and_(Protocol.status == "cancelled", Fine.unpaid.is_(True)),
            ),
            Protocol.number > after,
        )
        .order_by(Protocol.number)
        .limit(limit)
    )
    rows = [dict(zip(_PROTOCOL_FIELDS, r, strict=True)) for r in session.execute(missing)]
    counts = issue_from_protocols(session, now, rows) if rows else IssueCounts()
    return counts, rows[-1]["number"] if len(rows) == limit else None


class FineImport(BaseModel):
    """One fine from another system (e.g. a camera system); amounts are computed here from the tariff."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(pattern=NUMBER.pattern, description="the fine's number in the sending system")
    source: str = Field(pattern=SOURCE.pattern, description="which system, e.g. camera or camera:tbilisi")
    jurisdiction: Literal["KZ", "GE"]
    article: str = Field(min_length=1, max_length=32)
    offence_at: AwareDatetime
    issued_on: date | None = Field(
        default=None, description="decision date; default: the offence's local date"
    )
    person_id: str = Field(min_length=1, max_length=16)
    person_name: str = Field(default="", max_length=200)
    plate: str = Field(min_length=1, max_length=16)
    phone: str | None = Field(default=None, max_length=32)


class ImportResult(BaseModel):
    number: str
    outcome: Literal["created", "duplicate", "conflict", "refused"]
    detail: str = ""
    fine_id: int | None = None


def _person_ok(item: FineImport, on: date) -> str | None:
    if item.jurisdiction == "KZ":
        try:
            parse_iin(item.person_id)
        except InvalidIin as exc:
            return f"person_id: {exc}"
        return None
    if not re.fullmatch(r"[0-9]{11}", item.person_id):
        return "person_id: a Georgian personal number is 11 digits"
    return None


def import_fines(session: Session, now: datetime, items: Sequence[FineImport]) -> list[ImportResult]:
    """Store the fines of ``items`` (each on its own: a refused one changes nothing)."""
    from server.fines.contacts import ContactError, normalise_phone

    results: list[ImportResult] = []
    existing = _existing(session, [i.number for i in items])
    changes = Changes()
    for item in items:
        rules = current_rules(session, item.jurisdiction, now)
        offence_date = local_day(rules, item.offence_at)
        issued_on = item.issued_on or offence_date
        known = existing.get(item.number)
        if known is not None:
            same = (known.jurisdiction, known.person_id, known.article, known.offence_date, known.plate) == (
                item.jurisdiction, item.person_id, item.article, offence_date, item.plate,
            )  # fmt: skip
            outcome: Literal["duplicate", "conflict"] = "duplicate" if same else "conflict"
            detail = "" if same else f"number {item.number} is already a fine with other details"
            results.append(ImportResult(number=item.number, outcome=outcome, detail=detail, fine_id=known.id))
            continue
        problem = _person_ok(item, issued_on)
        phone = None
        if problem is None and item.phone:
            try:
                phone = normalise_phone(item.phone)
            except ContactError as exc:
                problem = str(exc)
        if problem is None and issued_on < offence_date:
            problem = f"issued_on {issued_on} is before the offence ({offence_date})"
        amounts = None
        if problem is None:
            try:
                amounts = _amounts(item.jurisdiction, item.article, offence_date, issued_on)
            except (FineError, ValueError) as exc:
                problem = str(exc)
        if problem is not None or amounts is None:
            results.append(ImportResult(number=item.number, outcome="refused", detail=problem or "refused"))
            continue
        full, reduced, deadline, tariff, currency_code = amounts
        facts, created = new_fine(issued_on, deadline, full, reduced)
        today = local_day(rules, now)
        columns = columns_after(
            FineState.ISSUED.value, issued_on, facts, rules, today, calendar_for(rules.jurisdiction), now
        )
        values = {
            "number": item.number,
            "source": item.source,
            "jurisdiction": item.jurisdiction,
            "rules": rules.label,
            "tariff": tariff,
            "person_id": item.person_id,
            "person_name": item.person_name,
            "plate": item.plate,
            "phone": phone,
            "article": item.article,
            "offence_date": offence_date,
            "issued_on": issued_on,
            "currency": currency_code,
            "full_minor": full,
            "reduced_minor": reduced,
            "discount_deadline": deadline,
            "paid_minor": 0,
            "paid_ref": "",
            "created_at": now,
            **columns,
        }
        fine_id = session.execute(insert(Fine).values(values).returning(Fine.id)).scalar_one()
        changes.events.append(event_row(fine_id, created, now) | {"detail": f"imported from {item.source}"})
        results.append(ImportResult(number=item.number, outcome="created", fine_id=fine_id))
        existing[item.number] = rows_of(session.execute(select_rows().where(Fine.id == fine_id)).all())[0]
    write(session, changes)
    created_count = sum(r.outcome == "created" for r in results)
    if created_count:
        log_event(log, "fines.imported", created=created_count, total=len(results))
    return results


def _amounts(code: str, article: str, offence_date: date, issued_on: date) -> tuple[int, int, date, str, str]:
    """(full, reduced, discount deadline, tariff label, currency) from the jurisdiction's tariff dataset."""
    jur = load_jurisdiction(code)
    calendar = calendar_for(code)
    try:
        rf = reduced_fine(jur, article, offence_date, issued_on, calendar)
        return rf.full.minor, rf.due.minor, rf.deadline, jur.label, jur.currency_code
    except NotPayableOnSpot:
        full = fine_for(jur, article, issued_on, offence_date)
        return full.minor, full.minor, issued_on, jur.label, jur.currency_code
