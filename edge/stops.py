"""The traffic stop: the officer draws up a protocol (offence report) in the simplified procedure.

The fine, the reduced amount and its deadline come from the jurisdiction's dataset in ``core.fines``; the
protocol row, its sync record and a bookmark on the recording are written in one transaction.

The place of the offence: a position the officer typed wins; otherwise the recorder's latest GPS fix
(``edge.recorder.position``) is used when it was read at most ``gps_max_age`` ago, else lat/lon stay empty —
a position is never guessed."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.fines import (
    FineError,
    HolidayCalendar,
    UnknownJurisdiction,
    load_holiday_calendar,
    load_jurisdiction,
    reduced_fine,
)
from core.iin import parse_iin
from core.structured_log import log_event
from core.sync.records import ProtocolRecordV1
from edge.db.base import transaction
from edge.db.protocols import Officer, Protocol
from edge.recorder.bookmarks import add_bookmark
from edge.recorder.position import PublishedFix, fresh_fix
from edge.sync.outbox import enqueue

log = logging.getLogger(__name__)

# The recording around the start of a stop that is bookmarked with the protocol (approach and first words).
STOP_LEAD = timedelta(minutes=2)
# The oldest recorder fix a protocol takes its position from (configurable: ``[gps] stop_max_age_s``).
GPS_MAX_AGE = timedelta(seconds=30)


class StopError(ValueError):
    """The protocol was refused; nothing was stored."""


@dataclass(frozen=True)
class StopDetails:
    number: str
    article: str
    driver_name: str
    driver_iin: str
    vehicle_plate: str
    officer_badge: str
    place: str = ""
    lat: float | None = None
    lon: float | None = None


def holiday_calendar(jurisdiction: str, extra: list[date]) -> HolidayCalendar:
    """The jurisdiction's shipped public holidays plus configured extra days off (weekends only if none ship)."""
    try:
        calendar = load_holiday_calendar(jurisdiction)
    except UnknownJurisdiction:
        calendar = HolidayCalendar.weekends_only()
    return calendar.with_days_off(extra) if extra else calendar


def add_officer(session: Session, badge: str, full_name: str, unit: str = "") -> Officer:
    if not badge.strip() or not full_name.strip():
        raise StopError("officer: badge and full name are required")
    officer = session.get(Officer, badge) or Officer(badge=badge, full_name=full_name, unit=unit)
    officer.full_name, officer.unit = full_name, unit
    session.add(officer)
    return officer


def open_protocol(
    sessions: sessionmaker[Session],
    details: StopDetails,
    *,
    device_id: str,
    jurisdiction: str,
    timezone: str,
    holidays: list[date],
    clock: Clock,
    gps_fix: PublishedFix | None = None,
    gps_max_age: timedelta = GPS_MAX_AGE,
) -> Protocol:
    """Validate and store a protocol with its reduced fine; raise ``StopError`` naming what was wrong.

    ``gps_fix`` is the recorder's latest fix (``published_fix(read_status(dir))``); see the module text."""
    number = details.number.strip()
    if not number or len(number) > 32:
        raise StopError("protocol number: 1 to 32 characters, as issued by ERAP")
    if not details.driver_name.strip():
        raise StopError("driver name is required (as on the ID)")
    plate = details.vehicle_plate.strip().upper()
    if not plate or len(plate) > 16:
        raise StopError("vehicle plate: 1 to 16 characters")
    now = clock.now()
    lat, lon, source = stop_position(details, gps_fix, now, gps_max_age)
    local_day = now.astimezone(ZoneInfo(timezone)).date()
    try:
        iin = parse_iin(details.driver_iin, reference_date=local_day)
    except ValueError as exc:
        raise StopError(f"driver IIN: {exc}") from exc
    try:
        jur = load_jurisdiction(jurisdiction)
        fine = reduced_fine(
            jur, details.article, local_day, local_day, holiday_calendar(jurisdiction, holidays)
        )
        article = jur.article(details.article)
    except (FineError, LookupError, ValueError) as exc:  # unknown article, not payable on the spot, no MRP…
        raise StopError(f"article {details.article!r}: {exc}") from exc
    with transaction(sessions) as s:
        officer = s.get(Officer, details.officer_badge)
        if officer is None:
            raise StopError(f"officer {details.officer_badge!r} is not registered on this device")
        if s.scalar(select(Protocol.number).where(Protocol.number == number)) is not None:
            raise StopError(f"protocol {number} already exists on this device")
        protocol = Protocol(
            number=number,
            jurisdiction=jurisdiction,
            article=article.code,
            article_title=article.title_ru or "",
            offence_at=now,
            offence_date=local_day,
            place=details.place,
            lat=lat,
            lon=lon,
            driver_name=details.driver_name.strip(),
            driver_iin=iin.value,
            vehicle_plate=plate,
            officer_badge=officer.badge,
            device_id=device_id,
            currency=fine.full.currency.code,
            fine_units=article.fine_units or 0,
            unit_value_minor=fine.mrp.minor if fine.mrp else 1,
            unit_year=fine.mrp_year or local_day.year,
            full_minor=fine.full.minor,
            reduced_minor=fine.due.minor,
            discount_deadline=fine.deadline,
            legal_basis=fine.legal_basis,
            dataset_version=fine.dataset_label,
            status="open",
            created_at=now,
        )
        s.add(protocol)
        s.flush()
        enqueue(s, "protocol", protocol_record(protocol, officer.full_name).to_body(), now=now)
        add_bookmark(s, "stop", number, now - STOP_LEAD, now)
    log_event(
        log,
        "stop.protocol_opened",
        protocol=number,
        article=article.code,
        due_minor=fine.due.minor,
        position=source,
    )
    return protocol


def stop_position(
    details: StopDetails, gps_fix: PublishedFix | None, now: datetime, max_age: timedelta
) -> tuple[float | None, float | None, str]:
    """(lat, lon, source): the officer's typed position, else a fresh recorder fix, else none."""
    if details.lat is not None or details.lon is not None:
        if details.lat is None or details.lon is None:
            raise StopError("position: give both latitude and longitude, or neither")
        if not (math.isfinite(details.lat) and -90 <= details.lat <= 90):
            raise StopError(f"position: latitude {details.lat} is outside -90..90")
        if not (math.isfinite(details.lon) and -180 <= details.lon <= 180):
            raise StopError(f"position: longitude {details.lon} is outside -180..180")
        return details.lat, details.lon, "officer"
    fresh = fresh_fix(gps_fix, now, max_age)
    if fresh is not None:
        return fresh.latitude, fresh.longitude, "gps"
    if gps_fix is not None:
        log_event(
            log,
            "stop.gps_fix_stale",
            age_s=round(gps_fix.age(now).total_seconds(), 1),
            max_age_s=max_age.total_seconds(),
        )
        return None, None, "none (stale fix)"
    return None, None, "none (no fix)"


def protocol_record(p: Protocol, officer_name: str | None) -> ProtocolRecordV1:
    return ProtocolRecordV1(
        number=p.number,
        jurisdiction=p.jurisdiction,
        article=p.article,
        article_title=p.article_title,
        offence_at=p.offence_at,
        offence_date=p.offence_date,
        place=p.place,
        lat=p.lat,
        lon=p.lon,
        driver_name=p.driver_name,
        driver_iin=p.driver_iin,
        vehicle_plate=p.vehicle_plate,
        officer_badge=p.officer_badge,
        officer_name=officer_name,
        currency=p.currency,
        fine_units=p.fine_units,
        unit_value_minor=p.unit_value_minor,
        unit_year=p.unit_year,
        full_minor=p.full_minor,
        reduced_minor=p.reduced_minor,
        discount_deadline=p.discount_deadline,
        legal_basis=p.legal_basis,
        dataset_version=p.dataset_version,
        status=p.status,
        created_at=p.created_at,
    )
