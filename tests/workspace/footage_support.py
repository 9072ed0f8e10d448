"""A device's footage as the workspace meets it: real H.264 fMP4 segments written by the recorder's own code,
hashed into the device's signed, chained manifest, uploaded over signed HTTP by the device's uploader, and
the synced records (segments, gaps, a stop with its payment, attempts, receipts, bookmarks) stored as the
ingest stores them.

``record_shift`` writes the files; ``upload_shift`` sends them to a server (a live process or a TestClient);
``add_stop_rows`` gives the server a stop around that footage.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from core.manifest import ManifestEntry
from edge.identity import DeviceIdentity

FPS = 15
SIZE = (160, 120)


@dataclass
class Shift:
    device_id: str
    identity: DeviceIdentity
    directory: Path
    entries: list[ManifestEntry] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def start(self, i: int) -> datetime:
        return self.entries[i].start

    def end(self, i: int) -> datetime:
        return self.entries[i].end


def record_shift(directory: Path, identity: DeviceIdentity, starts: Sequence[datetime], frames: int = 30) -> Shift:
    """Segments starting at ``starts`` (``frames`` frames at ``FPS`` each), chained from the genesis."""
    from edge.recorder.journal import Journal
    from edge.recorder.recovery import close_segment_file, segment_name
    from edge.recorder.segment_writer import EncoderSettings, SegmentWriter
    from edge.recorder.signer import SegmentSigner
    from simulators.camera import SyntheticScene

    rec = directory / "rec"
    rec.mkdir(parents=True, exist_ok=True)
    journal = Journal(rec)
    signer = SegmentSigner(identity.device_id, identity.private_key, identity.kid)
    scene = SyntheticScene(*SIZE)
    shift = Shift(identity.device_id, identity, rec)
    frame_no = 0
    for start in starts:
        seq = journal.next_seq()
        path = rec / segment_name(seq, start)
        writer = SegmentWriter(path, SIZE[0], SIZE[1], FPS, EncoderSettings())
        for _ in range(frames):
            writer.write(scene.frame(frame_no))
            frame_no += 1
        closed = writer.close()
        shift.entries.append(close_segment_file(journal, signer, path, seq, start, closed.frames, FPS, repaired=False))
        shift.files.append(path)
    return shift


def upload_shift(base_url: str, shift: Shift, http: httpx.Client | None = None, only: Sequence[int] | None = None) -> int:
    """Upload the shift's segments (all, or the sequence numbers in ``only``) with the device's uploader, from
    a copy of the files (the uploader deletes each file once the server confirmed it)."""
    import shutil

    from edge.db.base import make_engine, make_sessionmaker
    from edge.db.migrate import upgrade
    from edge.recorder.index import DatabaseIndex
    from edge.upload.client import UploadClient
    from edge.upload.uploader import Uploader

    run = shift.directory.parent / f"upload-{uuid.uuid4().hex[:8]}"
    run.mkdir()
    db_url = f"sqlite:///{run / 'device.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        device_sessions = make_sessionmaker(engine)
        index = DatabaseIndex(device_sessions, shift.device_id)
        for entry, path in zip(shift.entries, shift.files, strict=True):
            if only is None or entry.seq in only:
                copy = run / path.name
                shutil.copyfile(path, copy)
                index.segment_closed(entry, copy)
        own = http or httpx.Client(timeout=30)
        try:
            result = Uploader(device_sessions, run, UploadClient(base_url, shift.identity, http=own)).run_once()
        finally:
            if http is None:
                own.close()
        assert result.stopped_because == "done", result
        return result.confirmed
    finally:
        engine.dispose()


def add_segment_rows(
    sessions: sessionmaker[Session], shift: Shift, recording_id: str = "rec-1",
    gaps: Sequence[tuple[datetime, datetime, str]] = (),
) -> None:  # fmt: skip
    """The shift's synced segment and gap records, as the ingest stores them."""
    from server.db.sync import RecordingGap, SegmentMeta

    with sessions() as session, session.begin():
        for entry, path in zip(shift.entries, shift.files, strict=True):
            session.add(SegmentMeta(
                segment_id=str(uuid.uuid4()), record_id=str(uuid.uuid4()), device_id=shift.device_id,
                recording_id=recording_id, seq=entry.seq, started_at=entry.start, ended_at=entry.end,
                file_name=path.name, size_bytes=entry.size, sha256=entry.sha256, codec="h264", uploaded=False,
            ))  # fmt: skip
        for start, end, reason in gaps:
            session.add(RecordingGap(gap_id=str(uuid.uuid4()), record_id=str(uuid.uuid4()), device_id=shift.device_id,
                                     recording_id=recording_id, started_at=start, ended_at=end, reason=reason))  # fmt: skip


@dataclass(frozen=True)
class StopTimes:
    opened: datetime
    card_read: datetime
    check: datetime
    pin: datetime
    approved: datetime
    receipt_1: datetime
    receipt_2: datetime


def add_stop_rows(
    sessions: sessionmaker[Session],
    number: str,
    device_id: str,
    times: StopTimes,
    bookmark: tuple[datetime, datetime],
    driver: str = "Жанболатов Арман",
    iin: str = "850101300124",
    plate: str = "123ABC01",
    badge: str = "B-1001",
    verify_code: str | None = None,
) -> None:
    """A paid stop as the ingest stores it: protocol (with its name keys), officer, payment, the attempt
    (v2: card read and authorising times), the own-card check, both receipts printed (v2), a bookmark."""
    from core.name_search import name_keys
    from server.db.payment_attempts import PaymentAttemptCopy
    from server.db.protocols import Officer, Payment, Protocol, ProtocolNameKey
    from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent

    with sessions() as session, session.begin():
        if session.get(Officer, badge) is None:
            session.add(Officer(badge=badge, full_name="Сейтқали Ержан", unit="УАП ДП г. Астаны"))
        session.add(Protocol(
            number=number, device_id=device_id, jurisdiction="KZ", article="592.1",
            article_title="Превышение скорости на 10-20 км/ч", offence_at=times.opened, offence_date=times.opened.date(),
            place="Астана, пр. Кабанбай батыра 53", driver_name=driver, driver_iin=iin, vehicle_plate=plate,
            officer_badge=badge, currency="KZT", fine_units=5, unit_value_minor=432500, unit_year=2026,
            full_minor=2162500, reduced_minor=1081250, discount_deadline=date(2026, 3, 11),
            legal_basis="ст. 810 КоАП РК", dataset_version="kz-2026.1", status="paid", created_at=times.opened,
            received_at=times.opened,
        ))  # fmt: skip
        session.add_all([ProtocolNameKey(protocol_number=number, key=k) for k in name_keys(driver)])
        payment_id = str(uuid.uuid4())
        session.add(Payment(
            id=payment_id, device_id=device_id, protocol_number=number, amount_minor=1081250, currency="KZT",
            full_amount_minor=2162500, card_scheme="Mastercard", masked_pan="541333******4111", card_expiry="2812",
            card_hash="f" * 64, cardholder_name="ZHANBOLATOV/ARMAN", name_check="MATCH", auth_code="A1B2C3",
            trace_no="000042", receipt_no="0017", terminal_id="T0000001", terminal_time="0302141102",
            officer_badge=badge, approved_at=times.approved, received_at=times.approved,
        ))  # fmt: skip
        session.add(PaymentAttemptCopy(
            attempt_id=str(uuid.uuid4()), record_id=str(uuid.uuid4()), device_id=device_id, protocol_number=number,
            state="paid", revision=5, amount_minor=1081250, currency="KZT", officer_badge=badge,
            started_at=times.card_read - timedelta(seconds=1), updated_at=times.approved,
            masked_pan="541333******4111", card_scheme="Mastercard", name_check="MATCH", result_code=0,
            result_text="approved", reason="", trace_no=42, receipt_no=17, payment_id=payment_id,
            received_at=times.approved, card_read_at=times.card_read, authorising_at=times.pin,
        ))  # fmt: skip
        session.add(OwnCardCheck(
            check_id=str(uuid.uuid4()), record_id=str(uuid.uuid4()), device_id=device_id, protocol_number=number,
            payment_id=payment_id, cardholder_name="ZHANBOLATOV/ARMAN", driver_name=driver, result="MATCH",
            reason="transliteration matches", checked_at=times.check,
        ))  # fmt: skip
        for copy_no, at in ((1, times.receipt_1), (2, times.receipt_2)):
            session.add(ReceiptEvent(
                record_id=str(uuid.uuid4()), device_id=device_id, job_id=str(uuid.uuid4()), protocol_number=number,
                payment_id=payment_id, copy_no=copy_no, event="printed",
                detail='{"bytes_sent": 2048, "duplicate_no": 0, "printer": {"paper": "ok"}, "reason": "", "state": "confirmed"}',
                occurred_at=at, duplicate_no=0, verify_code=verify_code, mask_iin=copy_no == 1,
                timezone="Asia/Almaty", unit="УАП ДП г. Астаны", software_version="patrolkit 0.1.0",
            ))  # fmt: skip
        session.add(Bookmark(bookmark_id=str(uuid.uuid4()), record_id=str(uuid.uuid4()), device_id=device_id,
                             started_at=bookmark[0], ended_at=bookmark[1], label="stop", protocol_number=number,
                             officer_badge=badge))  # fmt: skip


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# The shift of the workspace tests (UTC): segments 1-3 at 09:10:00-09:10:06 (2 s each), a power-loss gap until
# 09:11:06, segments 4-5 at 09:11:06-09:11:10; the stop drawn up 09:10:00.5, card read 09:10:03, own-card
# check 09:10:04.5, PIN 09:10:05, approved 09:11:07, receipts 09:11:08.5 and 09:11:09.5, bookmarked
# 09:10:00-09:11:10.
T = utc(2026, 3, 2, 9, 10)
STARTS = [T, T + timedelta(seconds=2), T + timedelta(seconds=4), T + timedelta(seconds=66), T + timedelta(seconds=68)]
GAP = (T + timedelta(seconds=6), T + timedelta(seconds=66), "power_loss")
TIMES = StopTimes(
    opened=T + timedelta(seconds=0.5), card_read=T + timedelta(seconds=3), check=T + timedelta(seconds=4.5),
    pin=T + timedelta(seconds=5), approved=T + timedelta(seconds=67), receipt_1=T + timedelta(seconds=68.5),
    receipt_2=T + timedelta(seconds=69.5),
)  # fmt: skip
BOOKMARK = (T, T + timedelta(seconds=70))
