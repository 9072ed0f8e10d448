"""Drawing up a protocol at a stop: the reduced fine comes from the jurisdiction's data, the protocol is queued
for sync and bookmarked on the recording in one transaction, and bad input changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.base import transaction
from edge.db.protocols import Protocol
from edge.recorder.bookmarks import Bookmark
from edge.stops import (
    StopDetails,
    StopError,
    StopInvalid,
    add_officer,
    open_protocol,
    record_agreement,
    set_driver_phone,
)
from edge.sync.outbox import OutboxContent, OutboxRecord

# 2 March 2026 09:00 UTC = 14:00 in Astana (UTC+5), a Monday
CLOCK_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(device_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(device_sessions) as s:
        add_officer(s, "B-7", "Сейтқали Ержан", "ДПС")
    return device_sessions


def details(**over: object) -> StopDetails:
    base: dict[str, object] = {
        "number": "ERAP-0001",
        "article": "592.1",
        "driver_name": "Жанболатов Арман",
        "driver_iin": "850101300124",
        "vehicle_plate": "123abc01",
        "officer_badge": "B-7",
    }
    base.update(over)
    return StopDetails(**base)  # type: ignore[arg-type]


def open_(sessions: sessionmaker[Session], holidays: list[date] | None = None, **over: Any) -> Protocol:
    return open_protocol(
        sessions,
        details(**over),
        device_id="DEV-1",
        jurisdiction="KZ",
        timezone="Asia/Almaty",
        holidays=holidays or [],
        clock=FakeClock(CLOCK_START),
    )


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Protocol)) or 0,
            s.scalar(select(func.count()).select_from(OutboxRecord)) or 0,
            s.scalar(select(func.count()).select_from(Bookmark)) or 0,
        )


def test_protocol_carries_the_reduced_fine_and_is_queued_and_bookmarked(sessions: sessionmaker[Session]) -> None:
    p = open_(sessions)
    assert (p.full_minor, p.reduced_minor, p.currency) == (2_162_500, 1_081_250, "KZT")  # 5 MRP 2026, 50 %
    assert p.offence_date == date(2026, 3, 2) and p.vehicle_plate == "123ABC01"
    # 7 working days from the day after: Tue 3 … Wed 11 March (8 March, a Sunday, moves its day off to Mon 9)
    assert p.discount_deadline > date(2026, 3, 10)
    assert p.dataset_version.startswith("fines-kz@")
    with sessions() as s:
        rows = s.execute(
            select(OutboxRecord.record_type, OutboxContent.body).join(OutboxContent, OutboxContent.seq == OutboxRecord.seq).order_by(OutboxRecord.seq)
        ).all()
        assert [record_type for record_type, _ in rows] == ["protocol", "bookmark"]
        body = json.loads(rows[0][1])
        assert body["number"] == "ERAP-0001" and body["reduced_minor"] == 1_081_250
        assert body["officer_name"] == "Сейтқали Ержан"
        bookmark = s.scalars(select(Bookmark)).one()
        assert (bookmark.kind, bookmark.ref) == ("stop", "ERAP-0001")


def test_configured_extra_holiday_extends_the_discount_window(sessions: sessionmaker[Session]) -> None:
    plain = open_(sessions, number="A-1").discount_deadline
    extended = open_(sessions, number="A-2", holidays=[date(2026, 3, 4)]).discount_deadline
    assert extended > plain


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"driver_iin": "850101300125"}, "IIN"),
        ({"driver_iin": "12345"}, "IIN"),
        ({"article": "999.9"}, "999.9"),
        ({"article": "596.3"}, "596.3"),  # licence suspension: not payable on the spot
        ({"officer_badge": "B-404"}, "B-404"),
        ({"number": ""}, "protocol number"),
        ({"number": "X" * 40}, "protocol number"),
        ({"vehicle_plate": " "}, "plate"),
        ({"driver_name": ""}, "driver name"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_stores_nothing(
    sessions: sessionmaker[Session], over: dict[str, Any], reason: str
) -> None:
    with pytest.raises(StopError, match=reason):
        open_(sessions, **over)
    assert counts(sessions) == (0, 0, 0)


def test_the_same_protocol_number_cannot_be_opened_twice(sessions: sessionmaker[Session]) -> None:
    open_(sessions)
    before = counts(sessions)
    with pytest.raises(StopError, match="already exists"):
        open_(sessions)
    assert counts(sessions) == before


def test_every_wrong_field_is_reported_at_once_with_its_code_and_nothing_is_stored(sessions: sessionmaker[Session]) -> None:
    before = counts(sessions)
    with pytest.raises(StopInvalid) as err:
        open_(sessions, number="", driver_name="Aрман", driver_iin="850101300125", vehicle_plate="1",
              driver_phone="12", article="596.3")  # fmt: skip
    assert {k: e.code for k, e in err.value.errors.items()} == {
        "number": "number_required", "driver_name": "name_mixed_scripts", "driver_iin": "iin_check_digit",
        "vehicle_plate": "plate_format", "driver_phone": "phone_invalid", "article": "article_not_payable",
    }  # fmt: skip
    assert "driver IIN: check digit is 5, expected 4" in str(err.value)
    assert counts(sessions) == before


def test_a_number_used_before_and_an_unknown_officer_are_field_errors(sessions: sessionmaker[Session]) -> None:
    open_(sessions)
    with pytest.raises(StopInvalid) as err:
        open_(sessions)
    assert err.value.errors["number"].code == "number_exists"
    with pytest.raises(StopInvalid) as err:
        open_(sessions, number="ERAP-0002", officer_badge="NOBODY")
    assert err.value.errors["officer"].code == "officer_unknown"


def test_phone_and_agreement_are_new_protocol_records_and_the_first_agreement_stands(
    sessions: sessionmaker[Session],
) -> None:
    open_(sessions, driver_phone="8 701 123 45 67")
    clock = FakeClock(CLOCK_START)
    with pytest.raises(StopInvalid):
        set_driver_phone(sessions, "ERAP-0001", "123", clock)
    set_driver_phone(sessions, "ERAP-0001", "7771234567", clock)
    record_agreement(sessions, "ERAP-0001", "kk", clock)
    clock.advance(60)
    record_agreement(sessions, "ERAP-0001", "ru", clock)  # a second tap changes nothing
    with sessions() as s:
        protocol = s.get(Protocol, "ERAP-0001")
        bodies = [json.loads(b) for b in s.scalars(
            select(OutboxContent.body).join(OutboxRecord, OutboxRecord.seq == OutboxContent.seq)
            .where(OutboxRecord.record_type == "protocol").order_by(OutboxRecord.seq)
        )]  # fmt: skip
    assert protocol is not None and protocol.driver_phone == "+77771234567"
    assert protocol.driver_agreed_language == "kk" and protocol.driver_agreed_at == CLOCK_START
    assert [b["driver_phone"] for b in bodies] == ["+77011234567", "+77771234567", "+77771234567"]
    assert [b["driver_agreed_language"] for b in bodies] == [None, None, "kk"]
