"""Is stored footage intact? For each segment: the SHA-256 of the stored object against its signed manifest
entry, the device's Ed25519 signature over that entry, and the entry's link in the device's hash chain.

Verdicts (per segment, and for a set of segments the worst of them):

- ``intact``: the object is there, its SHA-256 and size are the entry's, the entry is signed by the device's
  registered key, and it links to its predecessor (which is stored and checked alike) or is the first;
- ``broken``: any of those checks fails (a changed byte, a missing object, a forged or altered entry, a
  broken link), or the synced segment record names another hash;
- ``incomplete``: nothing is wrong but something cannot be checked yet: the segment is not uploaded (or
  still uploading), its predecessor is not stored, so the link is unproven, or the device has no key;
- ``deleted``: the retention run deleted the object when its retention ended (the row stays as a tombstone,
  with its signed entry: a successor's chain link to it is still checked).

Every reason is a sentence; a verification reads each object once, in pieces, and also makes its layout
(``server.video.fmp4``) when it has none.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.manifest import (
    GENESIS_HASH,
    ManifestEntry,
    ManifestError,
    check_link,
    entry_from_json,
    entry_hash,
    verify_entry,
)
from core.signing import BadSignature, public_from_b64
from server.db.devices import Device
from server.db.sync import SegmentMeta
from server.db.video import SegmentVerification, VideoSegment
from server.video.fmp4 import Fmp4Error, Fmp4Scanner
from server.video.storage import VideoStore

READ_CHUNK = 1 << 20


class Verdict(enum.StrEnum):
    INTACT = "intact"
    BROKEN = "broken"
    INCOMPLETE = "incomplete"
    DELETED = "deleted"


VERDICT_WORDS = {
    Verdict.INTACT: "цела / intact",
    Verdict.BROKEN: "нарушена / broken",
    Verdict.INCOMPLETE: "неполная / incomplete",
    Verdict.DELETED: "удалено по сроку хранения / deleted by retention",
}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    found = set(verdicts)
    if Verdict.BROKEN in found:
        return Verdict.BROKEN
    if Verdict.INCOMPLETE in found or not found:
        return Verdict.INCOMPLETE
    if Verdict.DELETED in found:
        return Verdict.DELETED
    return Verdict.INTACT


@dataclass
class SegmentCheck:
    device_id: str
    seq: int
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    sha256_found: str | None = None
    layout_json: str | None = None

    def text(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class ObjectDigest:
    sha256: str
    size: int
    layout_json: str | None


def digest_object(store: VideoStore, key: str, size: int, want_layout: bool) -> ObjectDigest | None:
    """SHA-256 and size of the committed object (and its layout), read once in pieces; None if missing."""
    actual = store.committed_size(key)
    if actual is None:
        return None
    hasher = hashlib.sha256()
    scanner = Fmp4Scanner() if want_layout else None
    read = 0
    layout_ok = want_layout
    for piece in store.read_range(key, 0, actual - 1, READ_CHUNK) if actual else ():
        hasher.update(piece)
        read += len(piece)
        if scanner is not None and layout_ok:
            try:
                scanner.feed(piece)
            except Fmp4Error:
                layout_ok = False
    layout = None
    if scanner is not None and layout_ok:
        try:
            layout = json.dumps(scanner.finish().to_json(), separators=(",", ":"))
        except Fmp4Error:
            layout = None
    return ObjectDigest(hasher.hexdigest(), read, layout)


def _entry(row: VideoSegment) -> tuple[ManifestEntry | None, str | None]:
    try:
        return entry_from_json(row.entry_json), None
    except ManifestError as exc:
        return None, f"запись манифеста повреждена / the stored manifest entry is malformed: {exc}"


def check_segment(
    row: VideoSegment,
    previous: VideoSegment | None,
    key: Ed25519PublicKey | None,
    digest: ObjectDigest | None,
    meta_sha256: str | None,
) -> SegmentCheck:
    """The verdict on one stored segment, from its row, its predecessor's row (``None`` if not stored),
    the device's key and the digest of its object (``None`` if the object is missing)."""
    check = SegmentCheck(row.device_id, row.seq, Verdict.INTACT)
    broken: list[str] = []
    missing: list[str] = []
    entry, problem = _entry(row)
    if problem or entry is None:
        broken.append(problem or "no manifest entry")
    else:
        if entry.device_id != row.device_id or entry.seq != row.seq:
            broken.append("запись манифеста другого сегмента / the manifest entry names another segment")
        if entry_hash(entry) != row.entry_hash or entry.sha256 != row.sha256 or entry.size != row.size:
            broken.append("строка хранилища не совпадает с записью манифеста / the stored row differs from its entry")
        if key is None:
            missing.append("ключ устройства неизвестен / the device's key is unknown: signature not checked")
        else:
            try:
                verify_entry(entry, key)
            except ManifestError:
                broken.append(
                    "подпись устройства не сходится / the device's signature over the manifest entry does not verify"
                )
        if row.seq == 1 or entry.prev_hash == GENESIS_HASH:
            try:
                check_link(None, entry)
            except ManifestError as exc:
                broken.append(f"цепочка / chain: {exc}")
        elif previous is None:
            missing.append(
                f"сегмент {row.seq - 1} не загружен: звено цепочки не проверено / "
                f"segment {row.seq - 1} is not stored: the chain link is unproven"
            )
        else:
            prev_entry, prev_problem = _entry(previous)
            if prev_entry is None:
                broken.append(f"сегмент {row.seq - 1}: {prev_problem}")
            else:
                try:
                    check_link(prev_entry, entry)
                except ManifestError as exc:
                    broken.append(f"цепочка / chain: {exc}")
    if digest is None:
        broken.append("объект отсутствует в хранилище / the stored object is missing")
    else:
        check.sha256_found = digest.sha256
        check.layout_json = digest.layout_json
        if digest.size != row.size:
            broken.append(f"размер {digest.size} вместо {row.size} байт / size {digest.size}, expected {row.size} bytes")
        if digest.sha256 != row.sha256:
            broken.append(
                f"SHA-256 объекта {digest.sha256[:16]}… не совпадает с манифестом {row.sha256[:16]}… / "
                "the stored object's SHA-256 differs from the signed manifest"
            )
    if meta_sha256 is not None and meta_sha256 != row.sha256:
        broken.append("синхронизированная запись сегмента называет другой хэш / the synced segment record names another hash")
    if broken:
        check.verdict, check.reasons = Verdict.BROKEN, broken + missing
    elif missing:
        check.verdict, check.reasons = Verdict.INCOMPLETE, missing
    else:
        check.reasons = ["SHA-256, подпись и цепочка сходятся / SHA-256, signature and chain verified"]
    return check


def not_stored(device_id: str, seq: int, uploading: bool) -> SegmentCheck:
    reason = (
        "ещё загружается / still uploading" if uploading else "записан, но ещё не загружен / recorded, not uploaded yet"
    )
    return SegmentCheck(device_id, seq, Verdict.INCOMPLETE, [reason])


def deleted_by_retention(row: VideoSegment) -> SegmentCheck:
    when = row.deleted_at.isoformat() if row.deleted_at else "?"
    return SegmentCheck(row.device_id, row.seq, Verdict.DELETED, [
        f"удалён по сроку хранения {when} / deleted by retention at {when}: {row.deleted_reason or ''}".strip()])  # fmt: skip


def device_key(session: Session, device_id: str) -> Ed25519PublicKey | None:
    b64 = session.scalar(select(Device.public_key_b64).where(Device.device_id == device_id))
    if b64 is None:
        return None
    try:
        return public_from_b64(b64)
    except BadSignature:
        return None


def verify_segments(
    session: Session,
    store: VideoStore,
    device_id: str,
    seqs: Sequence[int],
    now: datetime,
    checked_by: str,
) -> list[SegmentCheck]:
    """Verify the named segments of one device (stored or not) and keep each stored one's result."""
    if not seqs:
        return []
    wanted = sorted(set(seqs))
    near = sorted(set(wanted) | {s - 1 for s in wanted if s > 1})
    rows: dict[int, VideoSegment] = {}
    for start in range(0, len(near), 500):
        rows.update(
            (r.seq, r)
            for r in session.scalars(
                select(VideoSegment).where(
                    VideoSegment.device_id == device_id, VideoSegment.seq.in_(near[start : start + 500])
                )
            )
        )
    metas: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        found = session.execute(
            select(SegmentMeta.seq, SegmentMeta.sha256).where(
                SegmentMeta.device_id == device_id, SegmentMeta.seq.in_(wanted[start : start + 500])
            )
        )
        metas.update((int(seq), str(sha)) for seq, sha in found)
    key = device_key(session, device_id)
    results = []
    for seq in wanted:
        row = rows.get(seq)
        if row is not None and row.state == "deleted":
            results.append(deleted_by_retention(row))
            continue
        if row is None or row.state != "stored":
            results.append(not_stored(device_id, seq, row is not None))
            continue
        previous = rows.get(seq - 1)
        if previous is not None and previous.state not in ("stored", "deleted"):
            previous = None
        digest = digest_object(store, row.storage_key, row.size, want_layout=row.layout_json is None)
        check = check_segment(row, previous, key, digest, metas.get(seq))
        keep(session, row, check, now, checked_by)
        results.append(check)
    return results


def keep(session: Session, row: VideoSegment, check: SegmentCheck, now: datetime, checked_by: str) -> None:
    """Record one verification (history row, the segment's latest verdict, its layout if it had none)."""
    session.add(
        SegmentVerification(
            device_id=row.device_id, seq=row.seq, checked_at=now, verdict=check.verdict.value,
            reasons="\n".join(check.reasons), checked_by=checked_by[:64], sha256_found=check.sha256_found,
        )
    )  # fmt: skip
    row.checked_at = now
    row.check_verdict = check.verdict.value
    if row.layout_json is None and check.layout_json is not None and check.sha256_found == row.sha256:
        row.layout_json = check.layout_json


def oldest_checked(session: Session, limit: int) -> list[tuple[str, int]]:
    """The stored segments verified longest ago (never verified first)."""
    never = list(
        session.execute(
            select(VideoSegment.device_id, VideoSegment.seq)
            .where(VideoSegment.state == "stored", VideoSegment.checked_at.is_(None))
            .order_by(VideoSegment.id)
            .limit(limit)
        ).tuples()
    )
    if len(never) >= limit:
        return never
    again = session.execute(
        select(VideoSegment.device_id, VideoSegment.seq)
        .where(VideoSegment.state == "stored", VideoSegment.checked_at.is_not(None))
        .order_by(VideoSegment.checked_at)
        .limit(limit - len(never))
    ).tuples()
    return never + list(again)


def verify_round(
    sessions: Callable[[], Session], store: VideoStore, now: datetime, batch: int
) -> list[SegmentCheck]:
    """One round of the background verifier: the ``batch`` segments verified longest ago, each device's
    in one transaction."""
    with sessions() as session:
        due = oldest_checked(session, batch)
    by_device: dict[str, list[int]] = {}
    for device_id, seq in due:
        by_device.setdefault(device_id, []).append(seq)
    results: list[SegmentCheck] = []
    for device_id, seqs in sorted(by_device.items()):
        with sessions() as session, session.begin():
            results.extend(verify_segments(session, store, device_id, seqs, now, "background"))
    return results
