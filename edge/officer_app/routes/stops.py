"""A new stop (the protocol form, every field checked at once, nothing stored until all are valid), the stop's
own page (summary, the roadside check, the phone for notices) and the roadside check on its own.

A stop is addressed by its protocol number in the query (``/stop?n=…``): ERAP numbers may hold ``/``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from core.iin import InvalidIin, parse_iin
from core.money import Money, currency
from edge.db.protocols import Protocol
from edge.officer_app.articles import article_title, choices
from edge.officer_app.guards import Officer, app_of, form_checked, signed_in
from edge.officer_app.i18n import Translator
from edge.officer_app.roadside_check import UnpaidCheck
from edge.officer_app.web import OfficerApp
from edge.recorder.position import fresh_fix, published_fix
from edge.recorder.recorder import read_status
from edge.stops import StopDetails, StopInvalid, open_protocol, set_driver_phone

router = APIRouter()
FIELDS = ("number", "place", "driver_iin", "driver_name", "vehicle_plate", "driver_phone", "article")


def stop_url(number: str, page: str = "") -> str:
    return f"/stop{page}?n={quote(number, safe='')}"


class StopForm(BaseModel):
    csrf: str = Field(max_length=100)
    number: str = Field(default="", max_length=64)
    place: str = Field(default="", max_length=500)
    driver_iin: str = Field(default="", max_length=40)
    driver_name: str = Field(default="", max_length=300)
    vehicle_plate: str = Field(default="", max_length=40)
    driver_phone: str = Field(default="", max_length=40)
    article: str = Field(default="", max_length=40)


class PhoneForm(BaseModel):
    csrf: str = Field(max_length=100)
    n: str = Field(max_length=64)
    driver_phone: str = Field(default="", max_length=40)


def _gps_place(app: OfficerApp, t: Translator) -> tuple[str, str]:
    """(the place text a fresh GPS fix gives, a note on where it came from); ("", note) without one."""
    fix = published_fix(read_status(app.config.recording_dir))
    now = app.clock.now()
    fresh = fresh_fix(fix, now, timedelta(seconds=app.config.gps.stop_max_age_s))
    if fresh is None:
        return "", t("stop.place_no_gps")
    return f"{fresh.latitude:.5f}, {fresh.longitude:.5f}", t("stop.place_gps", age=t.age(fresh.age(now)))


def suggest_number(app: OfficerApp) -> str:
    """A protocol number for the form, unique on this device: ``<device>-<local date>-<n>`` (editable)."""
    day = app.clock.now().astimezone(ZoneInfo(app.config.device.timezone))
    prefix = f"{app.config.device.id}-{day:%y%m%d}-"
    with app.sessions() as s:
        n = int(s.scalar(select(func.count()).where(Protocol.number.startswith(prefix))) or 0)
        while s.get(Protocol, f"{prefix}{n + 1:03d}") is not None:
            n += 1
    return f"{prefix}{n + 1:03d}"


def _form_page(
    request: Request, officer: Officer, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> HTMLResponse:
    app = app_of(request)
    t = officer.t
    place, place_note = _gps_place(app, t)
    if "place" not in values:
        values["place"] = place
    today = t.local(app.clock.now()).date()
    articles = choices(t, app.config.device.jurisdiction, today, list(app.config.rules.holidays))
    return app.page(request, "stop_new.html", t, officer, status=status, values=values, errors=errors,
                    articles=articles, place_note=place_note)  # fmt: skip


@router.get("/stops/new", response_class=HTMLResponse)
def new_stop(request: Request, officer: Annotated[Officer, Depends(signed_in)]) -> HTMLResponse:
    return _form_page(request, officer, {"number": suggest_number(app_of(request))}, {})


@router.post("/stops", response_model=None)
def create_stop(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[StopForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    app = app_of(request)
    cfg = app.config
    details = StopDetails(
        number=form.number, article=form.article, driver_name=form.driver_name, driver_iin=form.driver_iin,
        vehicle_plate=form.vehicle_plate, officer_badge=officer.badge, place=form.place, driver_phone=form.driver_phone,
    )  # fmt: skip
    try:
        protocol = open_protocol(
            app.sessions, details, device_id=cfg.device.id, jurisdiction=cfg.device.jurisdiction,
            timezone=cfg.device.timezone, holidays=list(cfg.rules.holidays), clock=app.clock,
            gps_fix=published_fix(read_status(cfg.recording_dir)), gps_max_age=timedelta(seconds=cfg.gps.stop_max_age_s),
        )  # fmt: skip
    except StopInvalid as exc:
        errors = {name: officer.t(f"error.{e.code}") for name, e in exc.errors.items()}
        values = {name: str(getattr(form, name)) for name in FIELDS}
        return _form_page(request, officer, values, errors, status=422)
    return RedirectResponse(stop_url(protocol.number), status_code=303)


def unpaid_words(t: Translator, check: UnpaidCheck, now_: object) -> dict[str, str]:
    if not check.has_list:
        return {"state": "no_list", "text": t("check.no_list")}
    from datetime import datetime

    assert isinstance(now_, datetime)
    info = t(
        "check.list_info", version=check.version, age=t.age(now_ - check.made_at) if check.made_at else "?"
    )
    if check.entry is None:
        return {"state": "none", "text": t("check.none"), "info": info}
    total = t.money(Money(check.entry.total_minor, currency(check.currency)))
    return {
        "state": "found",
        "text": t("check.found", count=check.entry.count, total=total, oldest=t.day(check.entry.oldest)),
        "info": info,
    }


def load_protocol(app: OfficerApp, number: str) -> Protocol:
    with app.sessions() as s:
        protocol = s.get(Protocol, number)
    if protocol is None:
        raise HTTPException(404, f"no protocol {number!r} on this device")
    return protocol


def protocol_view(t: Translator, p: Protocol) -> dict[str, object]:
    from core.fines import load_jurisdiction

    cur = currency(p.currency)
    try:
        title = article_title(load_jurisdiction(p.jurisdiction).article(p.article), t.lang)
    except Exception:
        title = p.article_title
    return {
        "number": p.number,
        "article": p.article,
        "title": title,
        "fine": t.money(Money(p.full_minor, cur)),
        "reduced": t.money(Money(p.reduced_minor, cur)),
        "until": t.day(p.discount_deadline),
        "driver": p.driver_name,
        "iin": p.driver_iin,
        "plate": p.vehicle_plate,
        "phone": p.driver_phone or "",
        "place": p.place,
        "at": t.moment(p.offence_at),
        "status": p.status,
        "agreed": t.moment(p.driver_agreed_at) if p.driver_agreed_at else "",
    }


@router.get("/stop", response_class=HTMLResponse)
def stop_page(request: Request, officer: Annotated[Officer, Depends(signed_in)], n: str) -> HTMLResponse:
    app = app_of(request)
    protocol = load_protocol(app, n)
    check = unpaid_words(officer.t, app.check.lookup(protocol.driver_iin), app.clock.now())
    from edge.officer_app.panels import stop_state

    with app.sessions() as s:
        state = stop_state(s, protocol)
    return app.page(request, "stop.html", officer.t, officer, p=protocol_view(officer.t, protocol), check=check,
                    state=state, n=n, stop_url=stop_url)  # fmt: skip


@router.post("/stop/phone", response_model=None)
def add_phone(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], form: Annotated[PhoneForm, Form()]
) -> Response:
    form_checked(request, officer, form.csrf)
    app = app_of(request)
    load_protocol(app, form.n)
    try:
        set_driver_phone(app.sessions, form.n, form.driver_phone, app.clock)
    except StopInvalid:
        return RedirectResponse(stop_url(form.n) + "&phone_error=1", status_code=303)
    return RedirectResponse(stop_url(form.n), status_code=303)


@router.get("/check", response_class=HTMLResponse)
def roadside_check(
    request: Request, officer: Annotated[Officer, Depends(signed_in)], iin: str = ""
) -> HTMLResponse:
    app = app_of(request)
    t = officer.t
    result: dict[str, str] | None = None
    error = ""
    if iin:
        try:
            person = parse_iin(iin[:40]).value
        except InvalidIin as exc:
            error = t(f"error.iin_{exc.problem.value}")
        else:
            result = unpaid_words(t, app.check.lookup(person), app.clock.now())
    return app.page(request, "check.html", t, officer, iin=iin[:40], result=result, error=error)
