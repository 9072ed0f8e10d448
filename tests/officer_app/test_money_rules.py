"""The money and evidence rules of the officer app, in a real browser on the simulators: paper out between the
two copies then Continue, a numbered duplicate, a reload and a second tab in the middle of a payment, and a
double tap on Pay (the terminal's own journal shows exactly one charge)."""

from __future__ import annotations

from typing import Any

import pytest
from officer_rig import OfficerRig
from sqlalchemy import func, select

from edge.db.officer_app import PayRequest
from edge.db.payment_attempts import PaymentAttempt
from edge.db.receipts import ReceiptJob

pytestmark = pytest.mark.browser


def test_paper_out_between_the_copies_then_continue_prints_the_missing_copy(
    rig: OfficerRig, tablet: Any
) -> None:
    rig.printer.configure(paper_out_after_cuts=1)  # the roll ends right after copy 1 is cut
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "ru")
    rig.phase(tablet, "paid")
    tablet.wait_for_selector("#paper-instruction")
    rig.shot(tablet, "07-paper-out")

    assert tablet.locator("#copy-1").get_attribute("data-state") == "printed"
    assert tablet.locator("#copy-2").get_attribute("data-state") == "failed"
    instruction = tablet.inner_text("#paper-instruction")
    assert (
        "Замените бумагу" in instruction and "«Продолжить»" in instruction and "НЕ оплачивать" in instruction
    )
    assert len(rig.printed(number)) == 1

    rig.printer.load_paper()
    tablet.click("#continue")
    tablet.wait_for_selector("#copy-2[data-state='printed']")
    copies = rig.printed(number)
    assert len(copies) == 2
    assert any("ДУБЛИКАТ" in line for line in copies[1].text_lines())  # the missing copy, marked as reprinted
    assert tablet.is_visible("#done")


def test_numbered_duplicate_on_request_and_the_preview_follows_the_paper_layout(
    rig: OfficerRig, tablet: Any
) -> None:
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "ru")
    rig.phase(tablet, "paid")
    tablet.wait_for_selector("#copy-2[data-state='printed']")
    tablet.click("#preview-link")
    tablet.wait_for_selector("#preview-2")
    rig.shot(tablet, "08-receipts-preview")

    paper = [line for line in rig.printed(number)[0].text_lines() if not line.startswith("[")]
    shown = tablet.locator("#preview-1 .line").all_inner_texts()
    # the same lines as the paper, in the same order (the QR aside)
    assert [s.strip() for s in shown if s.strip()][: len(paper)] == [p.strip() for p in paper if p.strip()]
    assert tablet.locator("#preview-1 img").count() == 1

    tablet.click("#duplicate-1")
    tablet.locator("#copy-1", has_text="дубликатов: 1").wait_for()
    assert tablet.locator("#live-panel #pay-panel").count() == 0  # the receipts screen's live part is receipts
    rig.store.wait_for(len(rig.store.receipts), 1)
    copies = rig.printed(number)
    assert len(copies) == 3
    assert any("КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № 1" in line for line in copies[2].text_lines())
    with rig.sessions() as s:
        dups = s.scalars(
            select(ReceiptJob.duplicate_no).where(
                ReceiptJob.protocol_number == number, ReceiptJob.copy_no == 1
            )
        ).all()
    assert sorted(dups) == [0, 1]


def test_reload_and_a_second_tab_in_the_middle_of_a_payment_show_the_live_state(
    rig: OfficerRig, tablet: Any
) -> None:
    rig.terminal.settings.auto_present = False  # the driver has not presented the card yet
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    rig.to_payment(tablet, "ru")
    tablet.locator("#pay-headline", has_text="карту").wait_for()

    tablet.reload()
    assert tablet.locator("#pay-panel").get_attribute("data-phase") == "running"
    assert "карт" in tablet.inner_text("#pay-headline").lower()
    assert tablet.is_visible("#cancel")
    other = tablet.context.new_page()
    other.goto(tablet.url)
    assert other.locator("#pay-panel").get_attribute("data-phase") == "running"

    rig.terminal.present_card("visa_named")
    rig.phase(tablet, "paid")
    rig.phase(other, "paid")
    assert len(rig.charges()[before:]) == 1
    with rig.sessions() as s:
        assert s.scalar(select(func.count()).where(PaymentAttempt.protocol_number == number)) == 1


def test_double_tap_two_tabs_and_retries_of_pay_start_one_authorisation(rig: OfficerRig, tablet: Any) -> None:
    rig.terminal.settings.auto_present = False
    before = len(rig.charges())
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    tablet.click("#to-driver")
    tablet.click("#agree")
    second = tablet.context.new_page()  # a second tab on the driver's screen: its own key
    second.goto(tablet.url)
    # a double tap, as the browser sends it when the button is not yet disabled: the same key twice at once
    statuses = tablet.evaluate(
        """async () => {
            const form = document.querySelector('#pay').form;
            const send = () => fetch('/stop/pay', {method: 'POST', body: new FormData(form), redirect: 'manual'});
            const replies = await Promise.all([send(), send()]);
            return replies.map(r => r.type === 'opaqueredirect' ? 303 : r.status);
        }"""
    )
    assert statuses == [303, 303]
    tablet.dblclick("#pay")  # and the button itself, tapped twice
    second.click("#pay")  # the other tab pays too, while the first payment waits for the card
    tablet.wait_for_url("**/stop/pay?*")
    rig.terminal.present_card("visa_named")
    rig.phase(tablet, "paid")
    rig.phase(second, "paid")
    # a retried request after the end returns the same attempt
    again = tablet.evaluate(
        """async (key) => {
            const data = new FormData(); data.append('csrf', document.body.dataset.csrf);
            data.append('n', new URLSearchParams(location.search).get('n')); data.append('key', key);
            const r = await fetch('/stop/pay', {method: 'POST', body: data, redirect: 'manual'});
            return r.type === 'opaqueredirect' ? 303 : r.status;
        }""",
        _key_of(rig, number),
    )
    assert again == 303

    assert len(rig.charges()[before:]) == 1, rig.charges()[before:]
    with rig.sessions() as s:
        attempts = s.scalars(select(PaymentAttempt).where(PaymentAttempt.protocol_number == number)).all()
        requests = s.scalars(select(PayRequest).where(PayRequest.protocol_number == number)).all()
    assert len(attempts) == 1
    assert len(requests) == 2 and len({r.job_id for r in requests}) == 1
    assert {r.attempt_id for r in requests} == {attempts[0].id}


def _key_of(rig: OfficerRig, number: str) -> str:
    with rig.sessions() as s:
        key = s.scalar(select(PayRequest.key).where(PayRequest.protocol_number == number).limit(1))
    assert key is not None
    return key


def test_an_attempt_in_doubt_shows_what_recovery_found_and_what_to_do_next(rig: OfficerRig, tablet: Any) -> None:
    """A crash left an authorisation without its result, and this terminal cannot repeat its last receipt:
    the payment stays in doubt, the page says what the terminal answered and what to do next, and offers no
    new payment of this protocol."""
    from core.money import Money, currency
    from edge.payment.attempt_states import AttemptState
    from edge.payment.attempts import AttemptJournal
    from simulators.zvt.scenarios import Profile

    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    journal = AttemptJournal(rig.sessions, rig.clock)
    attempt = journal.open(number, Money(1_081_250, currency("KZT")), "B-1")
    journal.move(attempt, AttemptState.CARD_READ, "card", masked_pan="4EEEEEEEEEEE1014")
    journal.move(attempt, AttemptState.AUTHORISING, "10 812.50", authorised_at=rig.clock.now())
    rig.terminal.settings.apply_profile(Profile.NO_REPEAT_RECEIPT)

    tablet.goto(f"{rig.url}/stop/pay?n={number}&lang=ru")
    rig.phase(tablet, "in_doubt")
    tablet.click("#ask-terminal")
    tablet.locator("#doubt .evidence", has_text="Repeat Receipt").wait_for()
    rig.shot(tablet, "09-in-doubt")
    doubt = tablet.inner_text("#doubt")
    assert "Не принимайте этот штраф повторно" in doubt and "End-of-Day" in doubt and "patrol-edge payment settle" in doubt
    assert attempt[:8] in doubt and "****1014" in doubt
    assert tablet.locator("#try-again").count() == 0 and tablet.locator("#cancel").count() == 0
    assert journal.get(attempt).state is AttemptState.IN_DOUBT  # type: ignore[union-attr]
    tablet.goto(f"{rig.url}/shift")
    assert tablet.locator(f"[data-number='{number}']").get_attribute("data-state") == "in_doubt"
