"""The devices' ``unpaid_fines`` dataset, built from the same rows the look-up reads (unpaid fines: count,
total due, oldest date per person) and sent down the signed dataset path (``server.ingest.datasets``).

A new version is published only when the content changed; only the newest ``KEEP_VERSIONS`` versions are
kept (devices are only ever sent the newest one). Rows are read in a stream, grouped by the database.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.fines import load_jurisdiction
from core.fines.unpaid_list import UnpaidEntry, encode_unpaid
from core.structured_log import log_event
from core.sync.signing import Signer
from server.db.fines import Fine
from server.db.sync import SyncDataset
from server.ingest.datasets import publish_dataset

log = logging.getLogger(__name__)
DATASET = "unpaid_fines"
KEEP_VERSIONS = 2
ID_DIGITS = {"KZ": 12, "GE": 11}


def build_unpaid(session: Session, jurisdiction: str) -> bytes:
    """The dataset content for the unpaid fines of ``jurisdiction``."""
    digits = ID_DIGITS[jurisdiction]
    query = (
        select(Fine.person_id, func.count(), func.sum(Fine.due_minor), func.min(Fine.issued_on))
        .where(Fine.unpaid == True, Fine.jurisdiction == jurisdiction)  # noqa: E712 - the partial index
        .group_by(Fine.person_id)
        .execution_options(yield_per=50_000)
    )
    entries = (
        UnpaidEntry(person, int(n), int(total or 0), oldest)
        for person, n, total, oldest in session.execute(query)
        if len(person) == digits and person.isdigit()
    )
    return encode_unpaid(entries, load_jurisdiction(jurisdiction).currency_code, digits)


def publish_unpaid(session: Session, signer: Signer, jurisdiction: str, now: datetime) -> int | None:
    """Publish a new version if the list changed; returns its version, or None when it did not change."""
    content = build_unpaid(session, jurisdiction)
    latest = session.execute(
        select(SyncDataset.version, SyncDataset.content)
        .where(SyncDataset.dataset == DATASET)
        .order_by(SyncDataset.version.desc())
        .limit(1)
    ).first()
    if latest is not None and hashlib.sha256(latest[1]).digest() == hashlib.sha256(content).digest():
        return None
    signed = publish_dataset(session, signer, DATASET, content, now)
    version = signed.manifest.version
    session.execute(
        delete(SyncDataset).where(
            SyncDataset.dataset == DATASET, SyncDataset.version <= version - KEEP_VERSIONS
        )
    )
    log_event(log, "fines.unpaid_dataset", version=version, bytes=len(content), jurisdiction=jurisdiction)
    return version
