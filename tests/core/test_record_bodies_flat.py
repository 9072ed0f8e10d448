"""The server builds business rows from a validated body's fields (``body.__dict__``), not ``model_dump``:
that is the same dict only while every field of a business record type is a plain value."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime

from pydantic import AwareDatetime, BaseModel

from core.sync.records import RECORD_MODELS, SegmentRecordV2

PLAIN = (str, int, float, bool, datetime, date, type(None), AwareDatetime)  # AwareDatetime validates to datetime


def _plain(annotation: object) -> bool:
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(v, PLAIN) for v in typing.get_args(annotation))
    args = typing.get_args(annotation)
    if args:  # X | None
        return all(_plain(a) for a in args)
    return isinstance(annotation, type) and issubclass(annotation, PLAIN) and not issubclass(annotation, BaseModel)


def test_every_business_record_field_is_a_plain_value() -> None:
    for (stream, version), model in RECORD_MODELS.items():
        if stream == "device_status":  # not a business row: stored as JSON through model_dump
            continue
        for name, field in model.model_fields.items():
            assert _plain(field.annotation), f"{stream} v{version}.{name}: {field.annotation} is not plain"


def test_fields_dict_equals_model_dump() -> None:
    body = SegmentRecordV2.model_validate(
        {"segment_id": "s", "recording_id": "r", "seq": 0, "started_at": "2026-03-02T09:00:00Z",
         "ended_at": "2026-03-02T09:01:00+00:00", "file_name": "a.mp4", "size_bytes": 1, "sha256": "0" * 64,
         "start_lat": 43.2, "start_lon": 76.9, "end_lat": None, "end_lon": None, "gps_fix_seconds": 30,
         "gps_seconds": 60}
    )  # fmt: skip
    assert dict(body.__dict__) == body.model_dump()
    assert body.__dict__["started_at"] == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
