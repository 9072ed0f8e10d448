"""Configuration parsing: TOML text overlaid with environment variables, validated by a pydantic model.

A process has one TOML file. Any key can be overridden by an environment variable named
``<PREFIX>__<SECTION>__<KEY>`` (double underscores separate levels), e.g. ``PATROLKIT_EDGE__TERMINAL__URL``.
A bad value stops the process at start with a ``ConfigError`` naming the key and what is expected.
The caller reads the file; this module does no I/O.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


def _env_value(raw: str) -> Any:
    """Environment values are TOML/JSON scalars when they parse as such (numbers, booleans, arrays), else strings."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        try:
            return json.loads(raw)
        except ValueError:
            return raw


def overlay_env(data: dict[str, Any], environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """Return a copy of ``data`` with every ``PREFIX__A__B`` variable set at key ``a.b``."""
    out: dict[str, Any] = copy.deepcopy(data)
    head = prefix.upper() + "__"
    for name, raw in sorted(environ.items()):
        if not name.upper().startswith(head):
            continue
        path = [p.lower() for p in name[len(head) :].split("__") if p]
        if not path:
            continue
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = _env_value(raw)
    return out


def _describe(err: dict[str, Any], prefix: str) -> str:
    key = ".".join(str(p) for p in err.get("loc", ()))
    env = prefix.upper() + "__" + "__".join(str(p).upper() for p in err.get("loc", ()))
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: {err.get('msg', 'invalid')}{shown} [file key '{key}' or env {env}]"


def parse_settings(
    model: type[M], toml_text: str | None, environ: Mapping[str, str], prefix: str, source: str = "<config>"
) -> M:
    """Parse TOML text (None = defaults only), overlay the environment, and validate into ``model``."""
    try:
        data = tomllib.loads(toml_text) if toml_text else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    merged = overlay_env(data, environ, prefix)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        lines = [_describe(dict(e), prefix) for e in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from None
