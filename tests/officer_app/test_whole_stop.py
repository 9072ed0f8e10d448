"""A whole traffic stop in the officer app, in a real browser, through the real terminal and printer
simulators: the own card, a probable match the officer confirms, a card without a name the officer attests,
another person's card (refused, the reason shown), a declined card, a driver who walks away, and Cancel."""

from __future__ import annotations

from typing import Any

import pytest
from officer_rig import OfficerRig, Scenario
from sqlalchemy import select

from edge.db.payment_attempts import PaymentAttempt
from edge.db.payments import Payment
from edge.db.protocols import Protocol

pytestmark = pytest.mark.browser
REDUCED_592_1 = 1_081_250  # 5 MRP of 2026 = 21 625 ₸, half: 10 812.50 ₸


def _attempt(rig: OfficerRig, number: str) -> PaymentAttempt:
    with rig.sessions() as s:
        row = s.scalar(
            select(PaymentAttempt)
            .where(PaymentAttempt.protocol_number == number)
            .order_by(PaymentAttempt.started_at.desc())
        )
        assert row is not None
        return row


def _paid(rig: OfficerRig, number: str) -> Payment | None:
    with rig.sessions() as s:
        return s.scalar(select(Payment).where(Payment.protocol_number == number))


def _charges_of(rig: OfficerRig, before: int) -> list[dict[str, Any]]:
    return rig.charges()[before:]


def test_own_card_pays_and_prints_both_receipts(rig: OfficerRig, tablet: Any) -> None:
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.shot(tablet, "02-stop")
    rig.to_payment(tablet, "kk")
    rig.phase(tablet, "paid")
    tablet.wait_for_selector("#copy-2[data-state='printed']")
    rig.shot(tablet, "05-paid-receipts-printed")

    assert tablet.locator("#copy-1").get_attribute("data-state") == "printed"
    assert "10 812.50 ₸" in tablet.inner_text("#pay-headline").replace("\u00a0", " ")
    with rig.sessions() as s:
        protocol = s.get(Protocol, number)
        assert protocol is not None and protocol.status == "paid"
        assert protocol.driver_agreed_language == "kk" and protocol.driver_agreed_at is not None
    assert [c["amount_minor"] for c in _charges_of(rig, before)] == [REDUCED_592_1]
    payment = _paid(rig, number)
    assert payment is not None and payment.name_check == "MATCH"
    copies = rig.printed(number)
    assert len(copies) == 2 and not any(r.torn for r in copies)


def test_probable_match_is_confirmed_by_the_officer_then_paid(rig: OfficerRig, tablet: Any) -> None:
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet, name="Жанболатова Арман")  # the card says ZHANBOLATOV/ARMAN
    rig.to_payment(tablet, "ru")
    rig.phase(tablet, "question")
    question = tablet.inner_text("#question")
    assert "ZHANBOLATOV" in question and "Жанболатова Арман" in question
    rig.shot(tablet, "04-own-card-question")
    tablet.click("#answer-yes")
    rig.phase(tablet, "paid")

    payment = _paid(rig, number)
    assert payment is not None and payment.name_check == "PROBABLE"
    assert payment.name_check_attested_by == "B-1"
    assert len(_charges_of(rig, before)) == 1


def test_card_without_a_name_is_attested_by_the_officer_then_paid(rig: OfficerRig, tablet: Any) -> None:
    rig.terminal.settings.card = "mc_chip"  # a chip read gives no cardholder name
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "ru")
    rig.phase(tablet, "question")
    assert tablet.locator("#question").get_attribute("data-kind") == "no_name"
    assert "4771" in tablet.inner_text("#question")
    tablet.click("#answer-yes")
    rig.phase(tablet, "paid")

    payment = _paid(rig, number)
    assert (
        payment is not None
        and payment.name_check == "UNAVAILABLE"
        and payment.name_check_attested_by == "B-1"
    )
    assert len(_charges_of(rig, before)) == 1


def test_another_persons_card_is_refused_with_the_reason_shown_and_nothing_charged(
    rig: OfficerRig, tablet: Any
) -> None:
    rig.terminal.settings.card = "visa_other"  # PETROV/IVAN
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "kk")
    rig.phase(tablet, "not_paid")
    headline = tablet.inner_text("#pay-headline")
    rig.shot(tablet, "06-card-refused")

    assert "PETROV/IVAN" in headline and "Жанболатов Арман" in headline
    assert "Карта қабылданбады" in headline  # in the driver's language
    assert _attempt(rig, number).state == "refused"
    assert _charges_of(rig, before) == [] and _paid(rig, number) is None
    assert tablet.is_visible("#try-again")


def test_declined_card_is_said_in_words_and_can_be_tried_again(rig: OfficerRig, tablet: Any) -> None:
    rig.terminal.settings.scenario = Scenario.DECLINED
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "ru")
    rig.phase(tablet, "not_paid")

    assert "Платёж отклонён" in tablet.inner_text("#pay-headline")
    assert _attempt(rig, number).state == "declined"
    assert _charges_of(rig, before) == []
    rig.terminal.settings.scenario = Scenario.APPROVED
    tablet.click("#try-again")
    tablet.click("#pay")
    rig.phase(tablet, "paid")
    assert len(_charges_of(rig, before)) == 1


def test_driver_who_walks_away_ends_the_payment_with_nothing_charged(rig: OfficerRig, tablet: Any) -> None:
    rig.terminal.settings.auto_present = False
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "en")
    tablet.locator("#pay-headline", has_text="card").wait_for()
    rig.shot(tablet, "04-insert-card")
    rig.terminal.walk_away()
    rig.phase(tablet, "not_paid")

    assert "No card was presented in time" in tablet.inner_text("#pay-headline")
    attempt = _attempt(rig, number)
    assert attempt.state == "card_failed" and attempt.result_code == 0x6C
    assert _charges_of(rig, before) == []


def test_cancel_aborts_on_the_terminal_and_charges_nothing(rig: OfficerRig, tablet: Any) -> None:
    rig.terminal.settings.auto_present = False
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "ru")
    tablet.wait_for_selector("#cancel")
    tablet.locator("#pay-headline", has_text="карту").wait_for()
    tablet.click("#cancel")
    rig.phase(tablet, "aborted")

    assert "Отменено" in tablet.inner_text("#pay-headline")
    attempt = _attempt(rig, number)
    assert attempt.state == "aborted" and "06 B0" in attempt.reason
    assert _charges_of(rig, before) == [] and _paid(rig, number) is None
    assert rig.terminal.display == "ready"
