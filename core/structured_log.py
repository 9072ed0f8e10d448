"""Structured logs: one JSON object per line, and ``log_event`` for the state changes that matter."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every log record to ``stream`` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("alembic", "escpos", "httpx", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_event(logger: logging.Logger, event: str, **fields: Any) -> None:
    """One log line for one state change, e.g. ``log_event(log, "payment.approved", protocol="P1")``.

    A field named like an attribute of every log record (``created``, ``name``, ``msg`` …) is written with a
    trailing ``_`` (``created_``): the logging module refuses to overwrite those, and a log line must never
    be what makes a piece of work fail."""
    safe = {(f"{key}_" if key in _RESERVED else key): value for key, value in fields.items()}
    logger.info(event, extra={"event": event, **safe})
