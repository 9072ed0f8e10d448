"""Fixtures of the fine lifecycle tests: a provisioned device whose records go through the real ingest
(device outbox → signed batch → ``ingest_batch``), the server app with a fake clock, and helpers to make
protocols, payments and API clients as they are in production."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.fines import load_holiday_calendar, load_jurisdiction, reduced_fine
from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message
from core.sync.records import Payment, Protocol
from core.sync.signing import Signer
from edge.sync.outbox import OutboxContent, OutboxRecord, enqueue, seal_pending
from server.app import create_app
from server.commands.device import ProvisionedDevice, add_device
from server.config import KeysSection, ServerConfig
from server.db.base import transaction
from server.fines.api_keys import add_client
from server.fines.daily_run import FineWork, RunReport, RunSettings, run_daily
from server.fines.runtime import FinesRuntime
from server.ingest.pipeline import BatchOutcome, Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday 2 March 2026, 14:00 in Almaty
DAY0 = date(2026, 3, 2)
IIN = "850101300124"
IIN2 = "061211600012"


def kz_protocol(number: str, status: str = "open", iin: str = IIN, day: date = DAY0) -> dict[str, Any]:
    """A KZ protocol for speeding 10-20 km/h (592.1) with the amounts the device's tariff computes."""
    rf = reduced_fine(load_jurisdiction("kz"), "592.1", day, day, load_holiday_calendar("kz"))
    at = datetime.combine(day, T0.timetz())
    return Protocol(
        number=number,
        jurisdiction="KZ",
        article="592.1",
        offence_at=at,
        offence_date=day,
        driver_name="Жанболатов Арман",
        driver_iin=iin,
        vehicle_plate="123ABC01",
        officer_badge="B-1001",
        officer_name="Сейтқали Ержан",
        currency="KZT",
        fine_units=5,
        unit_value_minor=432500,
        unit_year=day.year,
        full_minor=rf.full.minor,
        reduced_minor=rf.due.minor,
        discount_deadline=rf.deadline,
        dataset_version=rf.dataset_label,
        status=status,  # type: ignore[arg-type]
        created_at=at,
    ).to_body()


def card_payment(pid: str, number: str, amount_minor: int = 1081250, at: datetime = T0) -> dict[str, Any]:
    return Payment(
        id=pid,
        protocol_number=number,
        amount_minor=amount_minor,
        currency="KZT",
        full_amount_minor=2162500,
        status="approved",
        masked_pan="************1234",
        name_check="MATCH",
        officer_badge="B-1001",
        approved_at=at,
    ).to_body()


@dataclass
class Device:
    """A provisioned device whose records reach the server through the real ingest."""

    server: sessionmaker[Session]
    local: sessionmaker[Session]
    dev: ProvisionedDevice

    def send(self, *records: tuple[str, dict[str, Any]], now: datetime = T0) -> BatchOutcome:
        with self.local() as session, session.begin():
            for record_type, body in records:
                enqueue(session, record_type, body, now=now)
            seal_pending(session, self.dev.device_id, Signer.from_b64(self.dev.private_key_b64))
        with self.local() as session:
            rows = session.execute(
                select(OutboxRecord.record_type, OutboxContent.payload)
                .join(OutboxContent, OutboxContent.seq == OutboxRecord.seq)
                .where(OutboxRecord.state == "pending")
                .order_by(OutboxRecord.seq)
            ).all()
        with self.local() as session, session.begin():
            session.query(OutboxRecord).update({"state": "acked"})
        by_stream: dict[str, list[bytes]] = defaultdict(list)
        for stream, payload in rows:
            by_stream[stream].append(payload or b"")
        signer = Signer.from_b64(self.dev.private_key_b64)
        messages = [
            Incoming(up_topic(self.dev.device_id, stream), encode_batch_message(signer, payloads))
            for stream, payloads in by_stream.items()
        ]
        with self.server() as session, session.begin():
            return ingest_batch(session, messages, DeviceRegistry(self.server), now)


@pytest.fixture
def device(server_sessions: sessionmaker[Session], device_sessions: sessionmaker[Session]) -> Device:
    with server_sessions() as session, session.begin():
        dev = add_device(session, f"PD-{uuid.uuid4().hex[:10]}", T0)
    return Device(server_sessions, device_sessions, dev)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def work() -> FineWork:
    return FineWork(Signer.generate())


@dataclass
class Api:
    client: TestClient
    sessions: sessionmaker[Session]
    clock: FakeClock
    runtime: FinesRuntime

    def key(self, *scopes: str, per_minute: int = 600, name: str | None = None) -> dict[str, str]:
        with transaction(self.sessions) as session:
            key = add_client(
                session, name or f"c{uuid.uuid4().hex[:8]}", set(scopes), per_minute, self.clock.now()
            )
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api(
    server_sessions: sessionmaker[Session], clock: FakeClock, work: FineWork, tmp_path: Path
) -> Iterator[Api]:
    config = ServerConfig(data_dir=tmp_path, keys=KeysSection(signing_key_file=tmp_path / "server.key"))
    app = create_app(config, server_sessions)
    runtime = FinesRuntime(work, now=clock.now, monotonic=clock.monotonic)
    app.state.fines = runtime
    app.state.review_clock = clock.now
    with TestClient(app) as client:
        yield Api(client, server_sessions, clock, runtime)


def run(
    sessions: sessionmaker[Session], day: date, work: FineWork, clock: FakeClock | None = None
) -> RunReport:
    """The daily run for ``day``, its clock at 02:00 local time (20:00 UTC the day before)."""
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(hours=4)
    now = clock.now if clock is not None else (lambda: at)
    return run_daily(sessions, day, work, now, RunSettings(batch=50))


def count(sessions: sessionmaker[Session], model: Any, *where: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def georgian_fines(
    sessions: sessionmaker[Session],
    work: FineWork,
    n: int,
    phone: str | None = "+995599000{:03d}",
    at: datetime = T0,
) -> list[int]:
    """``n`` imported Georgian camera fines whose first SMS (20 % off within 10 days) is recorded, not sent."""
    from server.fines.daily_run import advance_fines
    from server.fines.issuing import FineImport, import_fines

    items = [
        FineImport(
            number=f"GE-{uuid.uuid4().hex[:10]}",
            source="camera",
            jurisdiction="GE",
            article="speed-40",
            offence_at=at,
            person_id=f"{10000000000 + i}",
            person_name="Giorgi Beridze",
            plate="AA-001-BB",
            phone=phone.format(i) if phone else None,
        )
        for i in range(n)
    ]
    with transaction(sessions) as session:
        ids = [r.fine_id for r in import_fines(session, at, items) if r.fine_id is not None]
        advance_fines(session, ids, at.date(), work, at)
    return ids


def make_iin(n: int) -> str:
    """The ``n``-th valid IIN of men born on 1 January 1985 (serials that can never be issued skipped)."""
    from core.iin import check_digit

    serial = 0
    found = -1
    while True:
        first = f"8501013{serial:04d}"
        digit = check_digit(first)
        if digit is not None:
            found += 1
            if found == n:
                return first + str(digit)
        serial += 1


def add_provider(sessions: sessionmaker[Session], name: str = "halyk") -> bytes:
    """A payment provider; returns its HMAC key."""
    import base64
    import secrets

    from server.db.fine_payments import PaymentProvider

    key = secrets.token_bytes(32)
    with transaction(sessions) as session:
        session.add(
            PaymentProvider(name=name, hmac_key=base64.b64encode(key).decode(), active=True, created_at=T0)
        )
    return key


def provider_post(
    api: Api, name: str, key: bytes, body: dict[str, Any] | bytes, stamp: int | None = None
) -> Any:
    """``POST /api/fines/payments`` signed as the provider would."""
    import json

    from server.routes.fines_api import provider_signature

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(stamp if stamp is not None else int(api.clock.now().timestamp()))
    headers = {"X-Provider": name, "X-Timestamp": ts, "X-Signature": provider_signature(key, ts, data),
               "Content-Type": "application/json"}  # fmt: skip
    return api.client.post("/api/fines/payments", content=data, headers=headers)
