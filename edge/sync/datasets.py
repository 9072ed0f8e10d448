"""Down-sync on the device: signed dataset versions stored locally, swapped in atomically, never rolled back.

``apply_dataset`` verifies a dataset message from the server (signature against the pinned server keys,
sha256, size), refuses a version that is not newer than the one in use, and in one SQLite transaction stores
the new version and makes it the active one. It also takes the chunks of a large dataset:
each is verified on arrival and held by a ``DatasetAssembler``; only the complete, re-verified whole is
swapped in, so a missing, forged or duplicate chunk never leaves a half dataset and the previous version
stays in use. Each chunk held is also kept, as received, in ``sync_dataset_chunk`` (same transaction), so a
device that restarts mid-download resumes it (``restore_chunks``) instead of fetching every chunk again.
``active_versions`` is what records made offline carry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.structured_log import log_event
from core.sync.datasets import (
    AnyManifest,
    DatasetAssembler,
    DatasetChunk,
    SignedDataset,
    check_newer,
    open_ref,
)
from core.sync.envelope import EnvelopeError
from core.sync.signing import BadSignature, KeyRing
from edge.db.base import Base, UtcDateTime

log = logging.getLogger(__name__)


class DatasetVersion(Base):
    """One verified dataset version held on the device; exactly one per dataset is ``active``."""

    __tablename__ = "sync_dataset_version"

    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    sig: Mapped[bytes] = mapped_column(LargeBinary)
    kid: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HeldChunk(Base):
    """A verified chunk of a dataset version still being received: the exact message, re-verified on load."""

    __tablename__ = "sync_dataset_chunk"

    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)
    message: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class Applied:
    dataset: str
    version: int


def active_versions(session: Session) -> dict[str, int]:
    """``{dataset: version}`` of every dataset in use (stamped on each record as ``refs``)."""
    rows = session.execute(
        select(DatasetVersion.dataset, DatasetVersion.version).where(DatasetVersion.active.is_(True))
    )
    return {name: version for name, version in rows}


def active_content(session: Session, dataset: str) -> tuple[int, bytes] | None:
    """The version and bytes of the dataset in use, or None if the device has none yet."""
    row = session.execute(
        select(DatasetVersion.version, DatasetVersion.content).where(
            DatasetVersion.dataset == dataset, DatasetVersion.active.is_(True)
        )
    ).first()
    return (row[0], row[1]) if row else None


def _active_version(session: Session, dataset: str) -> int | None:
    return session.scalar(
        select(DatasetVersion.version).where(
            DatasetVersion.dataset == dataset, DatasetVersion.active.is_(True)
        )
    )


def apply_dataset(
    session: Session, data: bytes, keys: KeyRing, now: datetime, chunks: DatasetAssembler | None = None
) -> Applied | None:
    """Verify a message from the ref topic and, once a version is complete, activate it in the caller's
    transaction: ``Applied`` then, None while a chunked version still misses chunks (held by ``chunks``).

    Raises ``EnvelopeError``/``BadSignature`` for a bad message (or a chunk without ``chunks``) and
    ``RollbackRefused`` for a version not newer than the active one; nothing is written or kept then.
    """
    opened = open_ref(data, keys)
    if not isinstance(opened, DatasetChunk):
        manifest, signed = opened
        check_newer(manifest, _active_version(session, manifest.dataset))
        return _activate(session, manifest, signed, now)
    chunk = opened
    if chunks is None:
        raise EnvelopeError("unexpected", "a dataset chunk, but no assembler to hold it")
    m = chunk.manifest
    check_newer(m, _active_version(session, m.dataset))
    whole = chunks.add(chunk)
    stale = (HeldChunk.dataset == m.dataset) & (HeldChunk.version != m.version)
    session.execute(delete(HeldChunk).where(stale))  # a newer version replaced an older partial one
    if whole is None:
        if session.get(HeldChunk, (m.dataset, chunk.index)) is None:
            session.add(HeldChunk(dataset=m.dataset, idx=chunk.index, version=m.version, message=data))
            session.flush()
        return None
    session.execute(delete(HeldChunk).where(HeldChunk.dataset == m.dataset))
    return _activate(session, m, whole, now)


def restore_chunks(session: Session, keys: KeyRing, chunks: DatasetAssembler) -> int:
    """Put the chunks kept in ``sync_dataset_chunk`` back into ``chunks`` (at start), each verified again;
    one that no longer verifies, or belongs to a version not newer than the one in use, is deleted.
    Returns how many are held."""
    held = 0
    for row in session.scalars(select(HeldChunk).order_by(HeldChunk.dataset, HeldChunk.idx)).all():
        try:
            chunk = open_ref(row.message, keys)
            if not isinstance(chunk, DatasetChunk) or chunk.index != row.idx:
                raise EnvelopeError("malformed", "not the chunk this row says")
            check_newer(chunk.manifest, _active_version(session, chunk.manifest.dataset))
            chunks.add(chunk)
            held += 1
        except (EnvelopeError, BadSignature, ValueError) as exc:  # RollbackRefused is a ValueError
            log_event(
                log, "sync.dataset.chunk_dropped", dataset=row.dataset, idx=row.idx, reason=str(exc)[:200]
            )
            session.delete(row)
    session.flush()
    return held


def _activate(session: Session, manifest: AnyManifest, signed: SignedDataset, now: datetime) -> Applied:
    session.execute(
        update(DatasetVersion).where(DatasetVersion.dataset == manifest.dataset).values(active=False)
    )
    session.add(
        DatasetVersion(
            dataset=manifest.dataset,
            version=manifest.version,
            manifest=signed.manifest_bytes,
            sig=signed.sig,
            kid=signed.kid,
            content=signed.content,
            active=True,
            applied_at=now,
        )
    )
    session.flush()
    log_event(log, "sync.dataset.applied", dataset=manifest.dataset, version=manifest.version)
    return Applied(manifest.dataset, manifest.version)
