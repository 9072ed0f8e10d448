"""The workspace's complaint cases drive the fine's appealed mark: the first open case of a protocol pauses its
fine (no demand goes out while it is open), the last one closed decides it: rejected lets the clocks run again,
upheld cancels the fine. A second case on the same protocol neither opens a second appeal nor ends the first."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.db.base import transaction
from server.db.fines import Fine
from server.fines.daily_run import FineWork
from server.review.audit import Operator
from server.review.cases import CaseState, Channel, NewCase, Outcome, move_case, open_case
from tests.fines.conftest import DAY0, T0, Device, card_payment, kz_protocol, run

WHO = Operator("inspector")


def _fine(sessions: sessionmaker[Session], number: str) -> Fine:
    with sessions() as session:
        fine = session.scalar(select(Fine).where(Fine.number == number))
        assert fine is not None
        session.expunge(fine)
        return fine


def _case(sessions: sessionmaker[Session], number: str) -> int:
    with transaction(sessions) as session:
        return open_case(session, NewCase(number, Channel.WRITTEN, "W-1", "скорость / speed"), WHO, T0).id


def _decide_and_close(sessions: sessionmaker[Session], case_id: int, outcome: Outcome) -> None:
    with transaction(sessions) as session:
        move_case(session, case_id, CaseState.UNDER_REVIEW, WHO, T0)
        move_case(session, case_id, CaseState.DECIDED, WHO, T0, outcome, "решение / decision")
    with transaction(sessions) as session:
        move_case(session, case_id, CaseState.CLOSED, WHO, T0)


def test_an_open_case_pauses_the_fine_and_a_rejected_one_lets_its_clocks_run(
    device: Device, work: FineWork
) -> None:
    device.send(("protocol", kz_protocol("KZ-CASE-1")))
    first, second = _case(device.server, "KZ-CASE-1"), _case(device.server, "KZ-CASE-1")
    assert _fine(device.server, "KZ-CASE-1").appealed
    run(device.server, DAY0 + timedelta(days=60), work)  # day 50 has passed: no demand while appealed
    assert _fine(device.server, "KZ-CASE-1").state not in ("demand_sent", "handed_over")
    _decide_and_close(device.server, first, Outcome.REJECTED)
    assert _fine(device.server, "KZ-CASE-1").appealed, "the second case is still open"
    _decide_and_close(device.server, second, Outcome.REJECTED)
    fine = _fine(device.server, "KZ-CASE-1")
    assert not fine.appealed and fine.state != "cancelled"


def test_an_upheld_case_cancels_the_fine(device: Device, work: FineWork) -> None:
    device.send(("protocol", kz_protocol("KZ-CASE-2")))
    case_id = _case(device.server, "KZ-CASE-2")
    _decide_and_close(device.server, case_id, Outcome.UPHELD)
    fine = _fine(device.server, "KZ-CASE-2")
    assert not fine.appealed and fine.state == "cancelled"


def test_a_case_on_a_fine_paid_on_the_spot_stands_and_changes_no_fine(device: Device) -> None:
    device.send(
        ("protocol", kz_protocol("KZ-CASE-3", status="paid")),
        ("payment", card_payment(str(uuid.uuid4()), "KZ-CASE-3")),
    )
    before = _fine(device.server, "KZ-CASE-3")
    case_id = _case(device.server, "KZ-CASE-3")
    _decide_and_close(device.server, case_id, Outcome.UPHELD)
    after = _fine(device.server, "KZ-CASE-3")
    assert before.state == "paid_reduced"
    assert (after.state, after.appealed) == (before.state, before.appealed)
