"""Fixtures for receipt tests: a paid protocol in a migrated device database, a device identity, and a virtual
printer served over TCP or a pty."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.signing import new_private_key
from edge.db.base import transaction
from edge.db.payments import Payment
from edge.db.protocols import Officer, Protocol
from edge.identity import DeviceIdentity
from edge.receipts.printing import ReceiptService
from edge.receipts.settings import ReceiptSettings
from hardware.printer.driver import EscposPrinter
from hardware.printer.profiles import PrinterProfile, profile_by_name
from simulators.printer.server import PtyPrinterServer, TcpPrinterServer
from simulators.printer.store import ReceiptStore
from simulators.printer.virtual_printer import VirtualPrinter

PROTOCOL_NO = "ERAP-2026-000123"


def add_paid_protocol(sessions: sessionmaker[Session], number: str = PROTOCOL_NO, paid: bool = True) -> str:
    """Officer, protocol and (when ``paid``) its approved payment; returns the payment id."""
    payment_id = str(uuid.uuid4())
    with transaction(sessions) as s:
        if s.get(Officer, "KZ-7781") is None:
            s.add(Officer(badge="KZ-7781", full_name="Серікбаев Әділет Қайратұлы", unit="ДПС УП г. Астана"))
            s.flush()
        s.add(
            Protocol(
                number=number,
                jurisdiction="KZ",
                article="592 ч.1",
                article_title="Превышение скорости на 10-20 км/ч / Жылдамдықты асыру",
                offence_at=datetime(2026, 3, 2, 4, 15, tzinfo=UTC),
                offence_date=date(2026, 3, 2),
                place="Астана, пр. Қабанбай батыр 53",
                driver_name="Жұмабаев Нұрлан Өмірұлы",
                driver_iin="850101300124",
                vehicle_plate="123ABC01",
                officer_badge="KZ-7781",
                device_id="DEV-0001",
                currency="KZT",
                fine_units=5,
                unit_value_minor=432500,
                unit_year=2026,
                full_minor=2162500,
                reduced_minor=1081250,
                discount_deadline=date(2026, 3, 9),
                legal_basis="50% ст. 810 КоАП РК",
                dataset_version="kz-2026.1",
                status="paid" if paid else "open",
                created_at=datetime(2026, 3, 2, 4, 20, tzinfo=UTC),
            )
        )
        s.flush()
        if not paid:
            return payment_id
        s.add(
            Payment(
                id=payment_id,
                protocol_number=number,
                amount_minor=1081250,
                currency="KZT",
                full_amount_minor=2162500,
                status="approved",
                card_scheme="VISA",
                masked_pan="427655******1234",
                card_expiry="2812",
                card_hash="",
                cardholder_name="NURLAN ZHUMABAYEV",
                name_check="MATCH",
                name_check_reason="",
                auth_code="A1B2C3",
                trace_no="000042",
                receipt_no="0017",
                terminal_id="52500041",
                terminal_time="0302092105",  # MMDDhhmmss, the terminal's local clock, as ZVT reports it
                officer_badge="KZ-7781",
                approved_at=datetime(2026, 3, 2, 4, 21, 5, tzinfo=UTC),
            )
        )
    return payment_id


@pytest.fixture
def identity() -> DeviceIdentity:
    return DeviceIdentity("DEV-0001", new_private_key())


@dataclass
class Rig:
    profile: PrinterProfile
    sim: VirtualPrinter
    store: ReceiptStore
    url: str
    driver: EscposPrinter
    service: ReceiptService
    payment_id: str
    sessions: sessionmaker[Session]


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(
    device_sessions: sessionmaker[Session], identity: DeviceIdentity, fake_clock: FakeClock, tmp_path: Path
) -> Iterator[RigFactory]:
    """Build a virtual printer served over ``transport`` (tcp|pty), a driver on its URL, and the service."""
    stops: list[Callable[[], None]] = []

    def build(profile_name: str = "kz1048-80mm", transport: str = "tcp") -> Rig:
        profile = profile_by_name(profile_name)
        store = ReceiptStore(profile, tmp_path / f"printed-{profile_name}-{transport}")
        sim = VirtualPrinter(profile, on_receipt=store.add, clock=fake_clock, strict=True)
        server: TcpPrinterServer | PtyPrinterServer
        server = TcpPrinterServer(sim, port=0) if transport == "tcp" else PtyPrinterServer(sim)
        server.start()
        stops.append(server.stop)
        driver = EscposPrinter(
            server.url, profile, fake_clock, read_timeout=1.5, confirm_timeout=5.0, settle_seconds=0.5
        )
        stops.append(driver.close)
        settings = ReceiptSettings(verify_base_url="https://verify.example.kz")
        service = ReceiptService(device_sessions, driver, identity, fake_clock, settings)
        payment_id = add_paid_protocol(device_sessions)
        return Rig(profile, sim, store, server.url, driver, service, payment_id, device_sessions)

    yield build
    for stop in reversed(stops):
        stop()


@pytest.fixture
def add_protocol() -> Callable[..., str]:
    """``add_protocol(sessions, paid=True)``: store an officer, a protocol and (when paid) its payment."""
    return add_paid_protocol
