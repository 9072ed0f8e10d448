"""Reading jurisdiction and holiday datasets: from packaged TOML (``importlib.resources``) or from given text.

Text comes from a packaged file or from a down-synced signed dataset (``mqtt.md`` §9); either way this module
parses and validates it and raises ``DatasetError`` whose message names every offending key, e.g.
``kz.toml: mrp[1].value_minor: Input should be greater than 0 (got -3450)``.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.fines.errors import DatasetError, UnknownJurisdiction
from core.fines.holiday_calendar import HolidayCalendar, HolidayRules, build_calendar
from core.fines.jurisdiction import Jurisdiction
from core.fines.lifecycle_rules import LifecycleRules

M = TypeVar("M", bound=BaseModel)

_DATA_PACKAGE = "core.fines.data"
_HOLIDAYS_SUFFIX = "_holidays"
_LIFECYCLE_SUFFIX = "_lifecycle"
_NOT_JURISDICTIONS = (_HOLIDAYS_SUFFIX, _LIFECYCLE_SUFFIX)


def _key(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location as ``article[3] (592.1).fine_units``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            label = None
            if isinstance(node, dict):  # an article by its code, a lifecycle step by its name
                label = node.get("code", node.get("name") if "anchor" in node else None)
            if isinstance(label, str):
                out += f" ({label})"
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _validate(model: type[M], data: dict[str, Any], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _key(tuple(err.get("loc", ())), data)
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or err.get("type") == "missing" else f" (got {got!r})"
            lines.append(f"{where}: {msg}{shown}" if where else f"{msg}{shown}")
        raise DatasetError(f"{source}: invalid dataset:\n  " + "\n  ".join(lines)) from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{source}: not valid TOML: {exc}") from None


def parse_jurisdiction(text: str, source: str = "<dataset>") -> Jurisdiction:
    """Parse and validate a jurisdiction dataset given as TOML text."""
    return _validate(Jurisdiction, _parse_toml(text, source), source)


def parse_holiday_rules(text: str, source: str = "<holidays>") -> HolidayRules:
    """Parse and validate a holiday dataset given as TOML text."""
    return _validate(HolidayRules, _parse_toml(text, source), source)


def parse_lifecycle(text: str, source: str = "<lifecycle>") -> LifecycleRules:
    """Parse and validate a lifecycle dataset given as TOML text."""
    return _validate(LifecycleRules, _parse_toml(text, source), source)


def _read_packaged(name: str) -> str | None:
    res = resources.files(_DATA_PACKAGE).joinpath(f"{name}.toml")
    return res.read_text(encoding="utf-8") if res.is_file() else None


def available_jurisdictions() -> list[str]:
    """Codes of the packaged jurisdictions (lower-case file stems), sorted."""
    names = (p.name for p in resources.files(_DATA_PACKAGE).iterdir() if p.is_file())
    return sorted(
        n.removesuffix(".toml")
        for n in names
        if n.endswith(".toml") and not n.removesuffix(".toml").endswith(_NOT_JURISDICTIONS)
    )


def _checked_code(code: str) -> str:
    c = code.strip().lower()
    if not c.isascii() or not c.isalpha() or len(c) != 2:
        raise UnknownJurisdiction(f"jurisdiction code must be two letters, got {code!r}")
    return c


def load_jurisdiction(code: str) -> Jurisdiction:
    """Load the packaged dataset for ``code`` (``"kz"``, ``"KZ"``, ``"ge"``); raises ``UnknownJurisdiction``."""
    c = _checked_code(code)
    text = _read_packaged(c)
    if text is None:
        raise UnknownJurisdiction(
            f"no dataset for jurisdiction {code!r}; known: {', '.join(available_jurisdictions())}"
        )
    jur = parse_jurisdiction(text, f"{c}.toml")
    if jur.code.lower() != c:
        raise DatasetError(f"{c}.toml: code: file is for {c.upper()} but says {jur.code!r}")
    return jur


def load_holiday_calendar(code: str) -> HolidayCalendar:
    """Build the packaged public-holiday calendar of ``code``; raises ``UnknownJurisdiction`` when none is shipped."""
    c = _checked_code(code)
    text = _read_packaged(c + _HOLIDAYS_SUFFIX)
    if text is None:
        raise UnknownJurisdiction(f"no holiday calendar shipped for {code!r}")
    return build_calendar(parse_holiday_rules(text, f"{c}{_HOLIDAYS_SUFFIX}.toml"))


def lifecycle_text(code: str) -> str:
    """The packaged lifecycle file of ``code`` as text (what a fine's rules snapshot keeps)."""
    c = _checked_code(code)
    text = _read_packaged(c + _LIFECYCLE_SUFFIX)
    if text is None:
        raise UnknownJurisdiction(f"no lifecycle rules shipped for {code!r}")
    return text


def load_lifecycle(code: str) -> LifecycleRules:
    """Load the packaged lifecycle rules of ``code``; a file for another jurisdiction, or one counting working
    days without a holiday calendar, is refused with ``DatasetError``."""
    c = _checked_code(code)
    source = f"{c}{_LIFECYCLE_SUFFIX}.toml"
    rules = parse_lifecycle(lifecycle_text(c), source)
    check_lifecycle(rules, c, source)
    return rules


def check_lifecycle(rules: LifecycleRules, code: str, source: str) -> None:
    """Checks that need other files: the jurisdiction matches, and working days have a calendar."""
    if rules.jurisdiction.lower() != code.lower():
        raise DatasetError(
            f"{source}: jurisdiction: file is for {code.upper()} but says {rules.jurisdiction!r}"
        )
    if rules.uses_working_days and _read_packaged(code.lower() + _HOLIDAYS_SUFFIX) is None:
        raise DatasetError(f"{source}: step count: working days need {code.lower()}{_HOLIDAYS_SUFFIX}.toml")
