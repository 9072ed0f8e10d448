"""Every field of a stop is checked before anything is stored, all problems at once, each under its field with
a code for the officer's language; the driver's phone and agreement are added later as new protocol records
(the first agreement stands)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.base import transaction
from edge.db.protocols import Protocol
from edge.stops import (
    StopDetails,
    StopInvalid,
    add_officer,
    open_protocol,
    record_agreement,
    set_driver_phone,
)
from edge.sync.outbox import OutboxContent, OutboxRecord

CLOCK_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(device_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(device_sessions) as s:
        add_officer(s, "B-7", "Сейтқали Ержан", "ДПС")
    return device_sessions


def open_(sessions: sessionmaker[Session], **over: Any) -> Protocol:
    fields: dict[str, Any] = {"number": "ERAP-0001", "article": "592.1", "driver_name": "Жанболатов Арман",
                              "driver_iin": "850101300124", "vehicle_plate": "123abc01", "officer_badge": "B-7", **over}  # fmt: skip
    return open_protocol(sessions, StopDetails(**fields), device_id="DEV-1", jurisdiction="KZ",
                         timezone="Asia/Almaty", holidays=[], clock=FakeClock(CLOCK_START))  # fmt: skip


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Protocol)) or 0),
            int(s.scalar(select(func.count()).select_from(OutboxRecord)) or 0),
        )


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
