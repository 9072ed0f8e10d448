"""Where a segment was recorded, in the wire contract: the ``segment`` sync record v2 (v1 still read) and the
signed manifest entry's ``gps``; bad positions are refused with a reason, and old entries keep their bytes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.manifest import (
    GENESIS_HASH,
    ManifestEntry,
    ManifestError,
    SegmentGps,
    canonical_bytes,
    entry_from_json,
    entry_hash,
    entry_to_json,
    sign_entry,
    verify_entry,
)
from core.signing import new_private_key
from core.sync.records import (
    CURRENT_VERSION,
    RecordRejected,
    Segment,
    SegmentRecordV1,
    SegmentRecordV2,
    parse_body,
    validate_for_enqueue,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEY = new_private_key()


def v1_body() -> dict[str, Any]:
    return SegmentRecordV1(
        segment_id="9b2f7c1e-0000-4000-8000-000000000001",
        recording_id="9b2f7c1e-0000-4000-8000-0000000000aa",
        seq=7,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=60),
        file_name="0000000007_20260302T090000.000Z.mp4",
        size_bytes=1_500_000,
        sha256="ab" * 32,
    ).to_body()


def v2_body(**over: Any) -> dict[str, Any]:
    body = {
        **v1_body(),
        "start_lat": 43.2389,
        "start_lon": 76.8897,
        "end_lat": 43.2412,
        "end_lon": 76.8931,
        "gps_fix_seconds": 58,
        "gps_seconds": 60,
    }
    body.update(over)
    return body


def test_the_device_emits_segment_v2_and_the_server_still_reads_v1() -> None:
    assert CURRENT_VERSION["segment"] == 2 and Segment is SegmentRecordV2
    old = parse_body("segment", 1, v1_body())
    assert isinstance(old, SegmentRecordV1) and old.seq == 7
    new = parse_body("segment", 2, v2_body())
    assert isinstance(new, SegmentRecordV2)
    assert (new.start_lat, new.end_lon, new.gps_fix_seconds, new.gps_seconds) == (43.2389, 76.8931, 58, 60)


def test_v2_without_a_fix_or_without_a_track_keeps_the_fields_null() -> None:
    no_fix = parse_body("segment", 2, v2_body(start_lat=None, start_lon=None, end_lat=None, end_lon=None,
                                              gps_fix_seconds=0))  # fmt: skip
    assert isinstance(no_fix, SegmentRecordV2) and no_fix.start_lat is None and no_fix.gps_fix_seconds == 0
    unknown = validate_for_enqueue("segment", v1_body())  # a body with no GPS at all is a valid v2
    assert isinstance(unknown, SegmentRecordV2)
    assert unknown.to_body()["start_lat"] is None and unknown.to_body()["gps_seconds"] is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"start_lat": 91.0}, "start_lat"),
        ({"start_lat": -90.5}, "start_lat"),
        ({"end_lon": 180.01}, "end_lon"),
        ({"start_lon": -200}, "start_lon"),
        ({"end_lat": float("nan")}, "end_lat"),
        ({"end_lat": None}, "end_lat and end_lon must both"),
        ({"start_lon": None}, "start_lat and start_lon must both"),
        ({"gps_seconds": None}, "gps_fix_seconds and gps_seconds"),
        ({"gps_fix_seconds": 61}, "exceeds gps_seconds"),
        ({"gps_fix_seconds": -1}, "gps_fix_seconds"),
        ({"altitude": 400}, "altitude"),
    ],
)
def test_v2_with_a_bad_position_is_rejected_naming_the_field(change: dict[str, Any], words: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        parse_body("segment", 2, v2_body(**change))
    assert caught.value.reason == "invalid_body"
    assert words in caught.value.detail


def test_v1_does_not_accept_gps_fields_and_an_unknown_version_is_named() -> None:
    with pytest.raises(RecordRejected, match="start_lat"):
        parse_body("segment", 1, v2_body())
    with pytest.raises(RecordRejected) as caught:
        parse_body("segment", 3, v2_body())
    assert caught.value.reason == "unknown_version" and "[1, 2]" in caught.value.detail


def _entry(gps: SegmentGps | None) -> ManifestEntry:
    return sign_entry(
        ManifestEntry(
            "DEV-1",
            1,
            "2026-03-02T09:00:00.000Z",
            "2026-03-02T09:01:00.000Z",
            1800,
            12345,
            "cd" * 32,
            GENESIS_HASH,
            "kid1",
            gps=gps,
        ),
        KEY,
    )


GPS = SegmentGps(43.2389, 76.8897, None, None, 41, 60)


def test_manifest_entry_gps_is_signed_and_round_trips() -> None:
    entry = _entry(GPS)
    again = entry_from_json(entry_to_json(entry))
    assert again == entry and again.gps == GPS and entry_hash(again) == entry_hash(entry)
    verify_entry(again, KEY.public_key())
    assert GPS.fix_fraction == pytest.approx(41 / 60)
    moved = replace(entry, gps=replace(GPS, start_lat=43.3))
    with pytest.raises(ManifestError, match="signature"):
        verify_entry(moved, KEY.public_key())


def test_an_entry_without_gps_keeps_the_bytes_it_always_had() -> None:
    entry = _entry(None)
    assert "gps" not in json.loads(entry_to_json(entry))
    old_form = {
        "device_id": "DEV-1", "seq": 1, "start_utc": "2026-03-02T09:00:00.000Z",
        "end_utc": "2026-03-02T09:01:00.000Z", "frames": 1800, "size": 12345, "sha256": "cd" * 32,
        "prev_hash": GENESIS_HASH, "repaired": False, "kid": "kid1",
    }  # fmt: skip
    assert canonical_bytes(entry) == json.dumps(old_form, sort_keys=True, separators=(",", ":")).encode()
    verify_entry(entry_from_json(json.dumps({**old_form, "signature": entry.signature})), KEY.public_key())


@pytest.mark.parametrize(
    ("gps", "words"),
    [
        ({"start_lat": 95.0}, "gps.start_lat"),
        ({"end_lon": float("inf"), "end_lat": 1.0}, "gps.end_lon"),
        ({"start_lon": None}, "gps.start"),
        ({"fix_seconds": 61}, "fix_seconds"),
        ({"start_lat": True}, "gps.start_lat"),
        ({"speed": 3}, "gps: expected exactly the fields"),
    ],
)
def test_a_malformed_manifest_gps_is_refused_naming_the_field(gps: dict[str, Any], words: str) -> None:
    data = json.loads(entry_to_json(_entry(GPS)))
    data["gps"].update(gps)
    with pytest.raises(ManifestError, match=words.replace(".", r"\.")):
        entry_from_json(json.dumps(data))
