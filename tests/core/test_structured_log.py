"""Structured log lines: every field reaches the JSON line, and a field named like a log record's own
attribute (``created``, ``name``…) is kept under a trailing ``_`` instead of failing the caller."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.structured_log import JsonFormatter, log_event


@pytest.mark.parametrize("field", ["created", "name", "process", "module", "msg", "args", "message", "lineno"])
def test_a_field_named_like_a_record_attribute_is_kept_not_fatal(field: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.structured.{field}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        log_event(logger, "fines.issued", **{field: 3}, paid=1)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["event"] == "fines.issued" and line[f"{field}_"] == 3 and line["paid"] == 1
