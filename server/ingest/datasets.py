"""Server side of down-sync: store signed dataset versions and answer a device's ``sync_ref`` with newer ones.

A worker reads the latest versions once for all the refs of a batch (``DatasetAnswers``): after a broker
restart every device of a fleet sends its ref at once, and a read per device would hold the acks back."""

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


class DatasetAnswers:
    """The latest version of every dataset, read once, and the messages that answer devices' refs from it.
    A version's content is read only when a device lacks it (most refs name what is already the latest), and
    the same answer is built once for every device that holds the same. Used within its session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._latest = list(
            session.execute(
                select(SyncDataset.dataset, func.max(SyncDataset.version))
                .group_by(SyncDataset.dataset)
                .order_by(SyncDataset.dataset)
            ).tuples()
        )
        self._signed: dict[tuple[str, int], SignedDataset] = {}
        self._built: dict[tuple[str, int, frozenset[int]], list[bytes]] = {}

    def messages(self, ref: SyncRef) -> list[bytes]:
        """The messages that answer a device's ``sync_ref``: every newer version it lacks, one message each, or
        one per chunk of a large one, less the chunks of that same version the device says it already holds."""
        out: list[bytes] = []
        for dataset, version in self._latest:
            if version <= ref.have.get(dataset, 0):
                continue
            partial = ref.partial.get(dataset)
            held = frozenset(partial.chunks) if partial is not None and partial.version == version else frozenset()
            key = (dataset, version, held)
            if key not in self._built:
                self._built[key] = list(self._version(dataset, version).wire_messages(held))
            out.extend(self._built[key])
        return out

    def _version(self, dataset: str, version: int) -> SignedDataset:
        if (dataset, version) not in self._signed:
            row = self._session.get_one(SyncDataset, (dataset, version))
            self._signed[(dataset, version)] = SignedDataset(row.manifest, row.sig, row.kid, row.content)
        return self._signed[(dataset, version)]


def ref_messages(session: Session, ref: SyncRef) -> list[bytes]:
    """The messages that answer one device's ``sync_ref`` (see ``DatasetAnswers``)."""
    return DatasetAnswers(session).messages(ref)
