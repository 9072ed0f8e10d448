"""Reconciling a provider's daily statement (CSV) with the payments it reported to the API.

The statement has a header ``reference,fine,amount_minor,currency,value_date``; a malformed line refuses the
whole file, naming the line, and stores nothing. Every line is then one of:

- **matched**: we have that reference with the same fine, amount, currency and value date;
- **mismatched**: we have the reference, but something differs (named in the item);
- **missing on our side**: we never received that payment;
- **duplicate**: the statement lists the reference again;

and every payment we recorded for that provider and value date that the statement does not list is
**missing in the statement**. The report and the lines that need a look are kept; the same file for the same
provider and day gives back the report already made.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.structured_log import log_event
from server.db.fine_payments import PaymentProvider, ProviderPayment, ReconciliationItem, ReconciliationReport
from server.fines.csv_files import csv_lines

log = logging.getLogger(__name__)
HEADER = ["reference", "fine", "amount_minor", "currency", "value_date"]
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./_:-]{0,63}$")


class StatementError(ValueError):
    """A statement that cannot be read; the message names the line and field."""


@dataclass(frozen=True)
class StatementLine:
    line: int
    reference: str
    fine: str
    amount_minor: int
    currency: str
    value_date: date


def parse_statement(data: bytes) -> list[StatementLine]:
    out: list[StatementLine] = []
    for n, (ref, fine, amount, cur, day) in csv_lines(data, HEADER, StatementError, "statement"):
        if not _REFERENCE.match(ref):
            raise StatementError(f"line {n}: reference {ref[:70]!r} is not a payment reference")
        if not _REFERENCE.match(fine):
            raise StatementError(f"line {n}: fine {fine[:70]!r} is not a fine number")
        if not amount.isdigit() or not 0 < int(amount) <= 10**12:
            raise StatementError(f"line {n}: amount_minor {amount[:30]!r} is not a positive whole number")
        if not re.fullmatch(r"[A-Z]{3}", cur):
            raise StatementError(f"line {n}: currency {cur[:10]!r} is not a three-letter code")
        try:
            value_date = date.fromisoformat(day)
        except ValueError:
            raise StatementError(f"line {n}: value_date {day[:30]!r} is not YYYY-MM-DD") from None
        out.append(StatementLine(n, ref, fine, int(amount), cur, value_date))
    return out


def _summary(r: ReconciliationReport) -> dict[str, Any]:
    return {
        "report": r.id, "provider": r.provider, "statement_date": r.statement_date.isoformat(),
        "matched": r.matched, "mismatched": r.mismatched, "missing_ours": r.missing_ours,
        "missing_statement": r.missing_statement, "duplicates": r.duplicates,
    }  # fmt: skip


def reconcile(
    session: Session, provider: str, statement_date: date, file_name: str, data: bytes, now: datetime
) -> dict[str, Any]:
    """Reconcile and keep the report; returns its summary."""
    if session.get(PaymentProvider, provider) is None:
        raise StatementError(f"no payment provider {provider!r}")
    lines = parse_statement(data)
    digest = hashlib.sha256(data).hexdigest()
    kept = session.scalars(
        select(ReconciliationReport).where(
            ReconciliationReport.provider == provider,
            ReconciliationReport.statement_date == statement_date,
            ReconciliationReport.file_sha256 == digest,
        )
    ).first()
    if kept is not None:
        return _summary(kept)
    ours = {
        p.reference: p
        for p in session.scalars(
            select(ProviderPayment).where(
                ProviderPayment.provider == provider, ProviderPayment.value_date == statement_date
            )
        )
    }
    others = {line.reference for line in lines} - set(ours)
    for i in range(0, len(others), 500):  # lines of other value dates still find their payment
        chunk = sorted(others)[i : i + 500]
        for p in session.scalars(
            select(ProviderPayment).where(
                ProviderPayment.provider == provider, ProviderPayment.reference.in_(chunk)
            )
        ):
            ours[p.reference] = p
    items: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    matched = 0
    for line in lines:
        if line.reference in seen:
            items.append(("duplicate", line.reference, f"line {line.line}: listed again"))
            continue
        seen.add(line.reference)
        found = ours.get(line.reference)
        if found is None:
            items.append(("missing_ours", line.reference, f"line {line.line}: {line.amount_minor} {line.currency} "
                          f"for {line.fine} of {line.value_date}: never reported to us"))  # fmt: skip
            continue
        diffs = [
            f"{name}: statement {theirs}, ours {mine}"
            for name, theirs, mine in (
                ("fine", line.fine, found.fine_number),
                ("amount_minor", line.amount_minor, found.amount_minor),
                ("currency", line.currency, found.currency),
                ("value_date", line.value_date, found.value_date),
            )
            if theirs != mine
        ]
        if diffs:
            items.append(("mismatched", line.reference, f"line {line.line}: " + "; ".join(diffs)))
        else:
            matched += 1
    for ref, p in sorted(ours.items()):
        if ref not in seen and p.value_date == statement_date:
            items.append(("missing_statement", ref, f"{p.amount_minor} {p.currency} for {p.fine_number}, "
                          f"received {p.received_at.isoformat()}: not in the statement"))  # fmt: skip
    count = {
        k: sum(1 for i in items if i[0] == k)
        for k in ("mismatched", "missing_ours", "missing_statement", "duplicate")
    }
    report = ReconciliationReport(
        provider=provider, statement_date=statement_date, file_name=file_name[:200], file_sha256=digest,
        matched=matched, mismatched=count["mismatched"], missing_ours=count["missing_ours"],
        missing_statement=count["missing_statement"], duplicates=count["duplicate"], created_at=now,
    )  # fmt: skip
    session.add(report)
    session.flush()
    session.add_all(
        ReconciliationItem(report_id=report.id, kind=k, reference=r, detail=d[:2000]) for k, r, d in items
    )
    log_event(log, "fines.reconciled", **_summary(report))
    return _summary(report)
