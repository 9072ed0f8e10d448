"""The evidence package: one ZIP that anyone can check with ``sha256sum`` and ``openssl`` alone.

It holds the original segment files (byte for byte, never re-encoded), each device's public key (PEM), the
signed manifest entries (the exact bytes signed, and the raw signatures), the synced records of the stop
(protocol, payment, payment attempts, settlements, own-card checks, receipt events, bookmarks, recording
gaps, segment records) as JSON, both receipts drawn from the synced data with the device's layout, the
access-audit extract, ``SHA256SUMS`` and ``VERIFY.txt`` (the commands, one per line).

``plan_for_protocol`` / ``plan_for_range`` gather what goes in (small parts in memory, segments by
reference); ``stream_package`` writes the ZIP as it goes (stored, not compressed: video does not compress),
one segment piece at a time, so memory stays flat however long the footage. Making a plan links its footage
as exported (``server.review.retention``), so it is kept the export category's years; footage retention
already deleted is named in the package's notes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from core.manifest import ManifestError, canonical_bytes, entry_from_json
from core.receipt_code import DOMAIN as RECEIPT_DOMAIN
from core.receipt_code import ReceiptCodeError, decode_receipt_code
from core.signing import BadSignature, public_from_b64
from server.db.devices import Device
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy
from server.db.protocols import Officer, Payment, Protocol
from server.db.supervisors import AccessAudit
from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent, RecordingGap, SegmentMeta
from server.db.video import VideoSegment
from server.evidence.receipts import receipt_documents
from server.review.audit import trail
from server.review.footage import Interval, stop_window
from server.review.retention import link_export
from server.video.storage import VideoStore

READ_CHUNK = 1 << 20
MAX_RANGE_SEGMENTS = 5000
ZIP_TIME = (2026, 1, 1, 0, 0, 0)


class ExportError(ValueError):
    """Nothing to export, or a request that cannot be met; the message says why."""


@dataclass(frozen=True)
class SegmentFile:
    device_id: str
    seq: int
    storage_key: str
    size: int
    sha256: str
    entry_json: str

    @property
    def name(self) -> str:
        return f"segments/{self.device_id}/{self.seq:010d}.mp4"

    @property
    def entry_name(self) -> str:
        return f"manifest/{self.device_id}/{self.seq:010d}.json"


@dataclass
class ExportPlan:
    title: str
    made_at: datetime
    made_by: str
    protocol_number: str | None
    segments: list[SegmentFile] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # small files, by name in the ZIP
    commands: list[str] = field(default_factory=list)  # filled by ``finish_plan``
    notes: list[str] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in (self.protocol_number or self.title))
        return f"evidence-{safe[:60]}.zip"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def row_dict(row: Any) -> dict[str, Any]:
    """Every column of a mapped row, JSON-ready (times as ISO 8601 UTC)."""
    mapper = inspect(row).mapper
    return {c.key: _jsonable(getattr(row, c.key)) for c in mapper.column_attrs}


def _json(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _pem(b64: str) -> bytes:
    return public_from_b64(b64).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _stored_segments(session: Session, device_id: str, start: datetime, end: datetime) -> list[SegmentFile]:
    rows = session.scalars(
        select(VideoSegment)
        .where(
            VideoSegment.device_id == device_id,
            VideoSegment.state == "stored",
            VideoSegment.started_at < end,
            VideoSegment.ended_at > start,
        )
        .order_by(VideoSegment.seq)
        .limit(MAX_RANGE_SEGMENTS + 1)
    ).all()
    if len(rows) > MAX_RANGE_SEGMENTS:
        raise ExportError(f"more than {MAX_RANGE_SEGMENTS} segments: export a shorter range")
    return [SegmentFile(r.device_id, r.seq, r.storage_key, r.size, r.sha256, r.entry_json) for r in rows]


def _deleted_note(session: Session, plan: ExportPlan, device_id: str, start: datetime, end: datetime) -> None:
    seqs = list(session.scalars(select(VideoSegment.seq).where(
        VideoSegment.device_id == device_id, VideoSegment.state == "deleted", VideoSegment.started_at < end,
        VideoSegment.ended_at > start).order_by(VideoSegment.seq)))  # fmt: skip
    if seqs:
        plan.notes.append(f"{device_id}: {len(seqs)} segment(s) deleted by retention, not included "
                          f"({', '.join(str(s) for s in seqs[:20])}{'…' if len(seqs) > 20 else ''})")  # fmt: skip


def _add_device_keys(session: Session, plan: ExportPlan) -> None:
    for device_id in sorted({s.device_id for s in plan.segments}):
        device = session.get(Device, device_id)
        if device is None:
            plan.notes.append(f"device {device_id} is not registered: its signatures cannot be checked")
            continue
        try:
            plan.files[f"device-keys/{device_id}.pem"] = _pem(device.public_key_b64)
        except BadSignature:
            plan.notes.append(f"device {device_id}: its registered key is malformed")


def _add_manifest(plan: ExportPlan) -> None:
    """Each entry's signed bytes and raw signature, the segments' hashes and the chain links, as check files
    ``sha256sum -c`` reads; lines come from the signed entries."""
    hashes, chain, entries = [], [], []
    exported = {(s.device_id, s.seq): s for s in plan.segments}
    for segment in plan.segments:
        try:
            entry = entry_from_json(segment.entry_json)
            signature = base64.b64decode(entry.signature, validate=True)
        except (ManifestError, ValueError):
            plan.notes.append(f"{segment.name}: its stored manifest entry is malformed")
            continue
        plan.files[segment.entry_name] = canonical_bytes(entry)
        plan.files[segment.entry_name[:-5] + ".sig"] = signature
        entries.append(json.dumps(entry.to_dict(), sort_keys=True, separators=(",", ":")))
        hashes.append(f"{entry.sha256}  {segment.name}")
        before = exported.get((segment.device_id, segment.seq - 1))
        if before is not None:
            chain.append(f"{entry.prev_hash}  {before.entry_name}")
    plan.files["manifest/entries.jsonl"] = ("\n".join(entries) + "\n").encode("ascii")
    plan.files["manifest/segment-hashes.sha256"] = ("\n".join(hashes) + "\n").encode("ascii")
    plan.files["manifest/chain.sha256"] = ("\n".join(chain) + "\n").encode("ascii")


def _add_receipts(session: Session, plan: ExportPlan, protocol: Protocol, payment: Payment, public_url: str,
                  zone: str) -> None:  # fmt: skip
    officer = session.get(Officer, payment.officer_badge)
    events = list(session.scalars(select(ReceiptEvent).where(ReceiptEvent.protocol_number == protocol.number)))
    rendered = receipt_documents(protocol, payment, officer, events, public_url, zone)
    for copy_no, (png, code) in sorted(rendered.items()):
        plan.files[f"receipts/copy-{copy_no}.png"] = png
        if code:
            try:
                signed = decode_receipt_code(code)
            except ReceiptCodeError:
                plan.notes.append(f"receipt copy {copy_no}: its synced verification code is malformed")
                continue
            plan.files["receipts/verify-code.msg"] = RECEIPT_DOMAIN + signed.body
            plan.files["receipts/verify-code.sig"] = signed.signature
            plan.files["receipts/verify-code.txt"] = (code + "\n").encode("ascii")
    if not rendered:
        plan.notes.append("no receipt: the payment's receipts are not synced")


def plan_for_protocol(
    session: Session, number: str, made_by: str, made_at: datetime, public_url: str, zone: str
) -> ExportPlan:
    """Everything of one stop: its footage window's stored segments, records, receipts and audit."""
    protocol = session.get(Protocol, number)
    if protocol is None:
        raise ExportError(f"no protocol {number}")
    bookmarks = list(session.scalars(select(Bookmark).where(Bookmark.protocol_number == number).order_by(Bookmark.started_at)))
    plan = ExportPlan(f"protocol {number}", made_at, made_by, number)
    windows = stop_window(protocol, bookmarks)
    gaps: list[RecordingGap] = []
    metas: list[SegmentMeta] = []
    link_export(session, [(device_id, iv) for device_id, iv, _ in windows], number, made_at)
    for device_id, iv, _ in windows:
        plan.segments += _stored_segments(session, device_id, iv.start, iv.end)
        _deleted_note(session, plan, device_id, iv.start, iv.end)
        gaps += session.scalars(select(RecordingGap).where(
            RecordingGap.device_id == device_id, RecordingGap.started_at < iv.end, RecordingGap.ended_at > iv.start))  # fmt: skip
        metas += session.scalars(select(SegmentMeta).where(
            SegmentMeta.device_id == device_id, SegmentMeta.started_at < iv.end, SegmentMeta.ended_at > iv.start))  # fmt: skip
    payment = session.scalar(select(Payment).where(Payment.protocol_number == number))

    def rows(model: Any, *where: Any) -> list[dict[str, Any]]:
        return [row_dict(r) for r in session.scalars(select(model).where(*where))]

    plan.files["records/protocol.json"] = _json(row_dict(protocol))
    plan.files["records/payment.json"] = _json(row_dict(payment) if payment else None)
    plan.files["records/payment_attempts.json"] = _json(rows(PaymentAttemptCopy, PaymentAttemptCopy.protocol_number == number))
    plan.files["records/payment_settlements.json"] = _json(rows(PaymentSettlementCopy, PaymentSettlementCopy.protocol_number == number))
    plan.files["records/own_card_checks.json"] = _json(rows(OwnCardCheck, OwnCardCheck.protocol_number == number))
    plan.files["records/receipt_events.json"] = _json(rows(ReceiptEvent, ReceiptEvent.protocol_number == number))
    plan.files["records/bookmarks.json"] = _json([row_dict(b) for b in bookmarks])
    plan.files["records/recording_gaps.json"] = _json([row_dict(g) for g in gaps])
    plan.files["records/segments.json"] = _json([row_dict(m) for m in metas])
    plan.files["records/footage_windows.json"] = _json(
        [{"device_id": d, "start": _jsonable(iv.start), "end": _jsonable(iv.end)} for d, iv, _ in windows]
    )
    if payment is not None:
        _add_receipts(session, plan, protocol, payment, public_url, zone)
    audit_rows = trail(session, number, [(s.device_id, s.seq) for s in plan.segments])
    plan.files["audit/access-audit.json"] = _json([row_dict(a) for a in audit_rows])
    _finish(session, plan)
    return plan


def plan_for_range(
    session: Session, device_id: str, start: datetime, end: datetime, made_by: str, made_at: datetime
) -> ExportPlan:
    """Any stretch of one device's stored footage, with its recording gaps and the audit of its segments."""
    if end <= start:
        raise ExportError("--to must be after --from")
    if session.get(Device, device_id) is None:
        raise ExportError(f"no device {device_id}")
    plan = ExportPlan(f"device {device_id} {start.isoformat()}..{end.isoformat()}", made_at, made_by, None)
    link_export(session, [(device_id, Interval(start, end))], device_id, made_at)
    plan.segments = _stored_segments(session, device_id, start, end)
    _deleted_note(session, plan, device_id, start, end)
    gaps = session.scalars(select(RecordingGap).where(
        RecordingGap.device_id == device_id, RecordingGap.started_at < end, RecordingGap.ended_at > start))  # fmt: skip
    plan.files["records/recording_gaps.json"] = _json([row_dict(g) for g in gaps])
    audit_rows = session.scalars(
        select(AccessAudit).where(AccessAudit.device_id == device_id,
                                  AccessAudit.seq.in_([s.seq for s in plan.segments] or [-1])).order_by(AccessAudit.id)
    )  # fmt: skip
    plan.files["audit/access-audit.json"] = _json([row_dict(a) for a in audit_rows])
    _finish(session, plan)
    return plan


def _finish(session: Session, plan: ExportPlan) -> None:
    if not plan.segments:
        plan.notes.append("no stored footage in this window (not uploaded yet, or none recorded)")
    _add_device_keys(session, plan)
    _add_manifest(plan)
    plan.files["VERIFY.txt"] = verify_text(plan).encode("utf-8")


def verify_commands(plan: ExportPlan) -> list[str]:
    commands = [
        "sha256sum -c SHA256SUMS",
        "sha256sum -c manifest/segment-hashes.sha256",
    ]
    if plan.files.get("manifest/chain.sha256", b"\n").strip():
        commands.append("sha256sum -c manifest/chain.sha256")
    for segment in plan.segments:
        key = f"device-keys/{segment.device_id}.pem"
        if segment.entry_name in plan.files and key in plan.files:
            commands.append(
                f"openssl pkeyutl -verify -pubin -inkey {key} -rawin -in {segment.entry_name} "
                f"-sigfile {segment.entry_name[:-5]}.sig"
            )
    if "receipts/verify-code.msg" in plan.files and plan.protocol_number is not None:
        devices = sorted({s.device_id for s in plan.segments}) or []
        receipt_key = next((f"device-keys/{d}.pem" for d in devices if f"device-keys/{d}.pem" in plan.files), None)
        if receipt_key:
            commands.append(
                f"openssl pkeyutl -verify -pubin -inkey {receipt_key} -rawin -in receipts/verify-code.msg "
                "-sigfile receipts/verify-code.sig"
            )
    return commands


def verify_text(plan: ExportPlan) -> str:
    plan.commands = verify_commands(plan)
    lines = [
        f"Evidence package: {plan.title}",
        f"Made {plan.made_at.astimezone(UTC).isoformat()} by {plan.made_by} (patrolkit server).",
        "The video files under segments/ are the device's original files, byte for byte: nothing was re-encoded.",
        "Receipts under receipts/ are drawn from the synced records with the device's receipt layout.",
        "",
        "HOW TO VERIFY (only sha256sum and openssl are needed). Unpack the ZIP, open a terminal in the folder",
        "that holds this file, and run each command below. Every sha256sum line must print OK and every",
        "openssl line 'Signature Verified Successfully'; any FAILED or failure means something was changed.",
        "",
        "  1. every file is as it was packed (SHA256SUMS);",
        "  2. each video file is the one the device hashed (its hash is in the device's signed manifest entry:",
        "  the lines of manifest/segment-hashes.sha256 are the sha256 fields of manifest/*/*.json);",
        "  3. the entries link into one chain (each entry's prev_hash is the SHA-256 of the entry before it);",
        "  4. the device signed each entry (Ed25519, its public key in device-keys/);",
        "  5. the receipt's QR code was signed by the device (receipts/verify-code.msg is the signed message).",
        "",
        "COMMANDS",
    ]
    lines += plan.commands
    if plan.notes:
        lines += ["", "NOTES"] + [f"  - {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"


class _Sink:
    """A write-only, unseekable file for ``zipfile``: bytes written wait in ``take()``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def seek(self, *args: Any) -> int:
        raise OSError("not seekable")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> Iterator[bytes]:
        parts, self._parts = self._parts, []
        yield from parts


def stream_package(plan: ExportPlan, store: VideoStore) -> Iterator[bytes]:
    """The ZIP's bytes as they are made. A segment whose stored object is missing is left out, so
    ``sha256sum -c manifest/segment-hashes.sha256`` fails for it."""
    sink = _Sink()
    sums: list[str] = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in sorted(plan.files):
            data = plan.files[name]
            archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
            yield from sink.take()
        for segment in plan.segments:
            info = zipfile.ZipInfo(segment.name, ZIP_TIME)
            hasher = hashlib.sha256()
            if store.committed_size(segment.storage_key) is None:
                continue
            with archive.open(info, "w", force_zip64=segment.size > 2**31) as out:
                for piece in store.read_range(segment.storage_key, 0, segment.size - 1, READ_CHUNK):
                    hasher.update(piece)
                    out.write(piece)
                    yield from sink.take()
            sums.append(f"{hasher.hexdigest()}  {segment.name}")
            yield from sink.take()
        archive.writestr(zipfile.ZipInfo("SHA256SUMS", ZIP_TIME), ("\n".join(sums) + "\n").encode("ascii"))
    yield from sink.take()
