"""The traffic stop: the officer draws up a protocol (offence report) in the simplified procedure.

The fine, the reduced amount and its deadline come from the jurisdiction's dataset in ``core.fines``; the
protocol row, its sync record and a bookmark on the recording are written in one transaction.

Every field is checked before anything is stored (``check_stop``); all problems are reported at once, each
under its field with a code (``FieldError``) that the officer app shows in the officer's language.

The place of the offence: a position the officer typed wins; otherwise the recorder's latest GPS fix
(``edge.recorder.position``) is used when it was read at most ``gps_max_age`` ago, else lat/lon stay empty —
a position is never guessed.

The driver's phone (optional, for notices) and the driver's agreement to the simplified procedure can be
added later; each change is written with a new record of the protocol for sync.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.fines import (
    FineError,
    HolidayCalendar,
    MissingRate,
    NotPayableOnSpot,
    ReducedFine,
    UnknownArticle,
    UnknownJurisdiction,
    load_holiday_calendar,
    load_jurisdiction,
    reduced_fine,
)
from core.fines.jurisdiction import Article
from core.id_name import InvalidIdName, parse_id_name
from core.iin import InvalidIin, parse_iin
from core.phones import InvalidPhone, parse_kz_mobile
from core.plates import InvalidPlate, parse_kz_plate
from core.structured_log import log_event
from core.sync.records import ProtocolRecordV2
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
LANGUAGES = ("kk", "ru", "en")


class StopError(ValueError):
    """The protocol was refused; nothing was stored."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """What is wrong with one field: ``code`` for the officer's language, ``message`` in English."""

    code: str
    message: str


class StopInvalid(StopError):
    """One or more fields are wrong: ``errors`` maps each field to its problem; nothing was stored."""

    def __init__(self, errors: dict[str, FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {e.message}" for name, e in errors.items()))


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
    driver_phone: str = ""


@dataclass(frozen=True)
class CheckedStop:
    """The fields of a protocol after every check: normalised values and the fine they lead to."""

    number: str
    article: Article
    fine: ReducedFine
    driver_name: str
    driver_iin: str
    vehicle_plate: str
    driver_phone: str | None
    lat: float | None
    lon: float | None
    position_source: str
    local_day: date
    errors: dict[str, FieldError] = field(default_factory=dict)


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


def _article_error(exc: Exception) -> FieldError:
    if isinstance(exc, UnknownArticle):
        return FieldError("article_unknown", str(exc))
    if isinstance(exc, NotPayableOnSpot):
        return FieldError("article_not_payable", str(exc))
    if isinstance(exc, MissingRate):
        return FieldError("article_no_rate", str(exc))
    return FieldError("article_invalid", str(exc))


def check_stop(
    details: StopDetails,
    *,
    jurisdiction: str,
    timezone: str,
    holidays: list[date],
    now: datetime,
    gps_fix: PublishedFix | None = None,
    gps_max_age: timedelta = GPS_MAX_AGE,
) -> CheckedStop:
    """Check every field of ``details``; ``StopInvalid`` listing each wrong field (nothing is stored here)."""
    errors: dict[str, FieldError] = {}
    number = details.number.strip()
    if not number:
        errors["number"] = FieldError("number_required", "protocol number: required, as issued by ERAP")
    elif len(number) > 32:
        errors["number"] = FieldError("number_too_long", "protocol number: at most 32 characters")
    local_day = now.astimezone(ZoneInfo(timezone)).date()
    name = ""
    try:
        name = parse_id_name(details.driver_name)
    except InvalidIdName as exc:
        errors["driver_name"] = FieldError(f"name_{exc.problem.value}", f"driver name: {exc}")
    iin = ""
    try:
        iin = parse_iin(details.driver_iin, reference_date=local_day).value
    except InvalidIin as exc:
        errors["driver_iin"] = FieldError(f"iin_{exc.problem.value}", f"driver IIN: {exc}")
    plate = details.vehicle_plate.strip().upper()
    if jurisdiction.upper() == "KZ":
        try:
            plate = parse_kz_plate(details.vehicle_plate)
        except InvalidPlate as exc:
            errors["vehicle_plate"] = FieldError(f"plate_{exc.problem.value}", f"vehicle plate: {exc}")
    elif not plate or len(plate) > 16:
        errors["vehicle_plate"] = FieldError("plate_format", "vehicle plate: 1 to 16 characters")
    phone: str | None = None
    if details.driver_phone.strip():
        try:
            phone = parse_kz_mobile(details.driver_phone)
        except InvalidPhone as exc:
            errors["driver_phone"] = FieldError("phone_invalid", str(exc))
    lat = lon = None
    source = ""
    try:
        lat, lon, source = stop_position(details, gps_fix, now, gps_max_age)
    except StopError as exc:
        errors["position"] = FieldError("position_invalid", str(exc))
    article: Article | None = None
    fine: ReducedFine | None = None
    if not details.article.strip():
        errors["article"] = FieldError("article_required", "article: choose the offence")
    else:
        try:
            jur = load_jurisdiction(jurisdiction)
            article = jur.article(details.article)
            fine = reduced_fine(jur, article, local_day, local_day, holiday_calendar(jurisdiction, holidays))
        except (
            FineError,
            LookupError,
            ValueError,
        ) as exc:  # unknown article, not payable on the spot, no MRP…
            errors["article"] = _article_error(exc)
    if errors:
        raise StopInvalid(errors)
    assert article is not None and fine is not None
    return CheckedStop(number, article, fine, name, iin, plate, phone, lat, lon, source, local_day)


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
    """Validate and store a protocol with its reduced fine; raise ``StopError`` naming what was wrong
    (``StopInvalid`` with every wrong field).

    ``gps_fix`` is the recorder's latest fix (``published_fix(read_status(dir))``); see the module text."""
    now = clock.now()
    checked = check_stop(
        details, jurisdiction=jurisdiction, timezone=timezone, holidays=holidays, now=now,
        gps_fix=gps_fix, gps_max_age=gps_max_age,
    )  # fmt: skip
    fine, article, number = checked.fine, checked.article, checked.number
    with transaction(sessions) as s:
        officer = s.get(Officer, details.officer_badge)
        if officer is None:
            raise StopInvalid(
                {
                    "officer": FieldError(
                        "officer_unknown",
                        f"officer {details.officer_badge!r} is not registered on this device",
                    )
                }
            )
        if s.scalar(select(Protocol.number).where(Protocol.number == number)) is not None:
            raise StopInvalid(
                {"number": FieldError("number_exists", f"protocol {number} already exists on this device")}
            )
        protocol = Protocol(
            number=number,
            jurisdiction=jurisdiction,
            article=article.code,
            article_title=article.title_ru or "",
            offence_at=now,
            offence_date=checked.local_day,
            place=details.place.strip(),
            lat=checked.lat,
            lon=checked.lon,
            driver_name=checked.driver_name,
            driver_iin=checked.driver_iin,
            vehicle_plate=checked.vehicle_plate,
            officer_badge=officer.badge,
            device_id=device_id,
            currency=fine.full.currency.code,
            fine_units=article.fine_units or 0,
            unit_value_minor=fine.mrp.minor if fine.mrp else 1,
            unit_year=fine.mrp_year or checked.local_day.year,
            full_minor=fine.full.minor,
            reduced_minor=fine.due.minor,
            discount_deadline=fine.deadline,
            legal_basis=fine.legal_basis,
            dataset_version=fine.dataset_label,
            status="open",
            created_at=now,
            driver_phone=checked.driver_phone,
        )
        s.add(protocol)
        s.flush()
        enqueue(s, "protocol", protocol_record(protocol, officer.full_name).to_body(), now=now)
        add_bookmark(s, "stop", number, now - STOP_LEAD, now, now=now)
    log_event(
        log,
        "stop.protocol_opened",
        protocol=number,
        article=article.code,
        due_minor=fine.due.minor,
        position=checked.position_source,
    )
    return protocol


def _changed(sessions: sessionmaker[Session], number: str, clock: Clock, **values: object) -> Protocol:
    with transaction(sessions) as s:
        protocol = s.get(Protocol, number)
        if protocol is None:
            raise StopError(f"protocol {number!r} does not exist on this device")
        for key, value in values.items():
            setattr(protocol, key, value)
        officer = s.get(Officer, protocol.officer_badge)
        enqueue(
            s, "protocol", protocol_record(protocol, officer.full_name if officer else None).to_body(),
            now=clock.now(),
        )  # fmt: skip
    return protocol


def set_driver_phone(sessions: sessionmaker[Session], number: str, text: str, clock: Clock) -> Protocol:
    """Add (or change) the driver's phone for notices; the protocol syncs again with it."""
    try:
        phone = parse_kz_mobile(text)
    except InvalidPhone as exc:
        raise StopInvalid({"driver_phone": FieldError("phone_invalid", str(exc))}) from exc
    protocol = _changed(sessions, number, clock, driver_phone=phone)
    log_event(log, "stop.phone_added", protocol=number)
    return protocol


def record_agreement(sessions: sessionmaker[Session], number: str, language: str, clock: Clock) -> Protocol:
    """The driver agreed to the simplified procedure, having read it in ``language``: stored once (the first
    agreement stands), with a new protocol record for sync."""
    if language not in LANGUAGES:
        raise StopError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    with sessions() as s:
        existing = s.get(Protocol, number)
        if existing is None:
            raise StopError(f"protocol {number!r} does not exist on this device")
        if existing.driver_agreed_at is not None:
            return existing
    protocol = _changed(
        sessions, number, clock, driver_agreed_at=clock.now(), driver_agreed_language=language
    )
    log_event(log, "stop.driver_agreed", protocol=number, language=language)
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


def protocol_record(p: Protocol, officer_name: str | None) -> ProtocolRecordV2:
    return ProtocolRecordV2(
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
        driver_phone=p.driver_phone,
        driver_agreed_at=p.driver_agreed_at,
        driver_agreed_language=p.driver_agreed_language,
    )
