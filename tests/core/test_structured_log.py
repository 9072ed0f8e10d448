"""``log_event`` never fails the work it reports: a field named like a log record's own attribute is kept
under a trailing underscore instead of raising."""

from __future__ import annotations

import io
import json
import logging

from core.structured_log import JsonFormatter, log_event


def test_a_field_named_like_a_record_attribute_is_kept_not_raised() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("patrolkit.test.structured_log")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        log_event(logger, "fines.issued", created=3, name="x", msg="m", paid=1)
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["msg"] == "fines.issued" and line["event"] == "fines.issued"
    assert (line["created_"], line["name_"], line["msg_"], line["paid"]) == (3, "x", "m", 1)
