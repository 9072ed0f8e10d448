"""Server side of down-sync: store signed dataset versions and answer a device's ``sync_ref`` with newer ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.sync.control import SyncRef
from core.sync.datasets import SignedDataset, sign_dataset
from core.sync.signing import Signer
from server.db.sync import SyncDataset


def publish_dataset(
    session: Session,
    signer: Signer,
    dataset: str,
    content: bytes,
    now: datetime,
    valid_from: datetime | None = None,
) -> SignedDataset:
    """Sign ``content`` as the next version of ``dataset`` and store it (devices pull it on connect)."""
    current = session.scalar(select(func.max(SyncDataset.version)).where(SyncDataset.dataset == dataset)) or 0
    signed = sign_dataset(signer, dataset, current + 1, content, now, valid_from)
    session.add(
        SyncDataset(
            dataset=dataset,
            version=current + 1,
            manifest=signed.manifest_bytes,
            sig=signed.sig,
            kid=signed.kid,
            content=content,
            created_at=now,
        )
    )
    session.flush()
    return signed


def newer_datasets(session: Session, have: dict[str, int]) -> list[SignedDataset]:
    """The latest version of every dataset that is newer than what the device holds."""
    latest = (
        select(SyncDataset.dataset, func.max(SyncDataset.version).label("version"))
        .group_by(SyncDataset.dataset)
        .subquery()
    )
    rows = session.scalars(
        select(SyncDataset).join(
            latest, (SyncDataset.dataset == latest.c.dataset) & (SyncDataset.version == latest.c.version)
        )
    ).all()
    return [
        SignedDataset(r.manifest, r.sig, r.kid, r.content) for r in rows if r.version > have.get(r.dataset, 0)
    ]


def ref_messages(session: Session, ref: SyncRef) -> list[bytes]:
    """The messages that answer a device's ``sync_ref``: every newer version it lacks, one message each, or
    one per chunk of a large one, less the chunks of that same version the device says it already holds."""
    messages: list[bytes] = []
    for signed in newer_datasets(session, dict(ref.have)):
        manifest = signed.manifest
        partial = ref.partial.get(manifest.dataset)
        held = set(partial.chunks) if partial is not None and partial.version == manifest.version else set()
        messages.extend(signed.wire_messages(held))
    return messages
