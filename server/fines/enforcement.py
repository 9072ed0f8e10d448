"""Hand-over batches for the bailiff (KZ) or the enforcement bureau (GE).

The daily run's steps make one signed document per fine and kind (``step_effects.document_row``); here the
documents not yet sent are gathered into one batch per jurisdiction, and a batch is exported (JSON with every
document's exact signed text, its SHA-256 and signature, plus the public key to check them) and acknowledged
by the bailiff. An acknowledgement is recorded once: the same one again is harmless, a different one is
refused.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.structured_log import log_event
from server.db.fine_enforcement import EnforcementBatch, EnforcementDocument

log = logging.getLogger(__name__)


class AckRefused(ValueError):
    """An acknowledgement for an unknown batch, or one that contradicts the recorded one."""


def batch_documents(session: Session, day: date, now: datetime) -> list[int]:
    """One new batch per jurisdiction of every document not in a batch yet; the new batches' ids."""
    made: list[int] = []
    pending = session.execute(
        select(EnforcementDocument.jurisdiction)
        .where(EnforcementDocument.batch_id.is_(None))
        .group_by(EnforcementDocument.jurisdiction)
        .order_by(EnforcementDocument.jurisdiction)
    ).scalars()
    for jurisdiction in list(pending):
        batch = EnforcementBatch(jurisdiction=jurisdiction, made_on=day, created_at=now, documents=0)
        session.add(batch)
        session.flush()
        session.execute(
            update(EnforcementDocument)
            .where(EnforcementDocument.batch_id.is_(None), EnforcementDocument.jurisdiction == jurisdiction)
            .values(batch_id=batch.id)
        )
        count = session.scalar(select(func.count()).where(EnforcementDocument.batch_id == batch.id)) or 0
        batch.documents = count
        made.append(batch.id)
        log_event(log, "fines.handover_batch", batch=batch.id, jurisdiction=jurisdiction, documents=count)
    return made


def acknowledge(session: Session, batch_id: int, by: str, reference: str, now: datetime) -> EnforcementBatch:
    """Record the bailiff's acknowledgement of a batch (``AckRefused`` if unknown or contradicting)."""
    batch = session.get(
        EnforcementBatch, batch_id, with_for_update=session.get_bind().dialect.name == "postgresql"
    )
    if batch is None:
        raise AckRefused(f"no hand-over batch {batch_id}")
    if batch.acknowledged_at is not None:
        if (batch.acknowledged_by, batch.ack_reference) == (by, reference):
            return batch
        raise AckRefused(
            f"batch {batch_id} was already acknowledged by {batch.acknowledged_by!r} ({batch.ack_reference!r})"
        )
    batch.acknowledged_at, batch.acknowledged_by, batch.ack_reference = now, by[:200], reference[:200]
    log_event(log, "fines.handover_acknowledged", batch=batch_id, by=by, reference=reference)
    return batch


def batch_with_documents(
    session: Session, batch_id: int
) -> tuple[EnforcementBatch, list[EnforcementDocument]] | None:
    """A batch and its documents in order, or None."""
    batch = session.get(EnforcementBatch, batch_id)
    if batch is None:
        return None
    docs = session.scalars(
        select(EnforcementDocument)
        .where(EnforcementDocument.batch_id == batch_id)
        .order_by(EnforcementDocument.id)
    ).all()
    return batch, list(docs)


def batch_export(session: Session, batch_id: int, public_key_b64: str) -> dict[str, Any] | None:
    """A batch as JSON-ready data: every document's signed text, SHA-256, signature and key id."""
    found = batch_with_documents(session, batch_id)
    if found is None:
        return None
    batch, docs = found
    return {
        "batch": batch_id,
        "jurisdiction": batch.jurisdiction,
        "made_on": batch.made_on.isoformat(),
        "documents_count": batch.documents,
        "acknowledged_at": batch.acknowledged_at.isoformat() if batch.acknowledged_at else None,
        "signature": {"algorithm": "Ed25519", "domain": "pk-enforcement-v1", "public_key": public_key_b64},
        "documents": [
            {
                "kind": d.kind,
                "document": json.loads(d.body),
                "signed_text": d.body,
                "sha256": d.sha256,
                "sig": d.sig,
                "kid": d.kid,
            }
            for d in docs
        ],
    }


def batch_counts(session: Session) -> dict[int, dict[str, int]]:
    """Per batch, how many documents of each kind it holds."""
    out: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(EnforcementDocument.batch_id, EnforcementDocument.kind, func.count())
        .where(EnforcementDocument.batch_id.is_not(None))
        .group_by(EnforcementDocument.batch_id, EnforcementDocument.kind)
    )
    for batch_id, kind, count in rows:
        out.setdefault(int(batch_id), {})[kind] = int(count)
    return out
