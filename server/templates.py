"""The server's HTML pages: one Jinja2 environment over ``server/templates/`` (autoescape on for every
template, undefined names are errors), its filters, and ``render``, which any route of the server uses to
answer with a page. Static files (CSS, JS, vendored libraries) live in ``server/static/`` and are served at
``/static/``.

Times on pages are the jurisdiction's local time with its offset (``2026-03-02 14:10:00 +05:00``): the
``local`` filter reads the zone from the page's context (``tz``), which ``render`` fills from the app's
configuration (``[review] timezone``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from core.money import Money, currency

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_ZONE = "Asia/Almaty"


def local_time(at: datetime | None, zone: str, seconds: bool = True) -> str:
    """``2026-03-02 14:10:00 +05:00`` in ``zone``; "—" for no time."""
    if at is None:
        return "—"
    here = at.astimezone(ZoneInfo(zone))
    offset = here.strftime("%z")
    text = here.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {offset[:3]}:{offset[3:]}"


def money_text(minor: int, code: str) -> str:
    """``10 812.50 ₸``; an unknown currency shows the minor units and its code."""
    try:
        return Money(minor, currency(code)).format().replace("\u00a0", " ")
    except (ValueError, KeyError):
        return f"{minor} (minor units, {code})"


@pass_context
def _local(context: Context, at: datetime | None, seconds: bool = True) -> str:
    return local_time(at, str(context.get("tz") or DEFAULT_ZONE), seconds)


def _iso(value: datetime | date | None) -> str:
    return "" if value is None else value.isoformat()


def _size(size: int | None) -> str:
    if size is None:
        return "—"
    if size >= 1_000_000_000:
        return f"{size / 1e9:.2f} GB"
    return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{size / 1000:.0f} kB"


def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["local"] = _local
    env.filters["money"] = money_text
    env.filters["iso"] = _iso
    env.filters["size"] = _size
    env.filters["ms"] = _epoch_ms
    return env


ENVIRONMENT = make_environment()


def zone_of(request: Request) -> str:
    review = getattr(request.app.state.config, "review", None)
    return str(getattr(review, "timezone", DEFAULT_ZONE))


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page ``name`` (a path under ``server/templates/``) with ``context``; ``tz`` and ``request`` are
    added. ``server.security_headers`` adds the security and caching headers."""
    zone = zone_of(request)
    offset = datetime.now(ZoneInfo(zone)).strftime("%z")
    values = {"tz": zone, "tz_offset": f"{offset[:3]}:{offset[3:]}", "request": request, **(context or {})}
    html = ENVIRONMENT.get_template(name).render(values)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))
