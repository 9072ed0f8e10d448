"""The pure fine lifecycle: every path of both jurisdictions' rules, day by day; amounts due on a value date;
payments, postal outcomes, appeals and cancellation; working-day triggers; and properties over random years."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.fines import HolidayCalendar, load_holiday_calendar, load_jurisdiction, reduced_fine
from core.fines.datasets import load_lifecycle, parse_lifecycle
from core.fines.fine_state import TERMINAL, TRANSITIONS, FineState, TransitionRefused, check_transition
from core.fines.lifecycle_engine import (
    DueKind,
    EventRefused,
    FineFacts,
    HappeningKind,
    Pause,
    PaymentOutcome,
    RefundReason,
    advance,
    after_pauses,
    amount_due,
    cancel,
    close_appeal,
    new_fine,
    next_on,
    open_appeal,
    record_delivery,
    settle,
)
from core.fines.lifecycle_rules import Action, LifecycleRules

S = FineState
KZ = load_lifecycle("kz")
GE = load_lifecycle("ge")
KZ_CAL = load_holiday_calendar("kz")
NO_HOLIDAYS = HolidayCalendar.weekends_only()
ISSUED = date(2026, 3, 2)  # a Monday; 8 March 2026 is a Sunday, so Monday 9 March is a day off in KZ


def kz_fine() -> FineFacts:
    rf = reduced_fine(load_jurisdiction("kz"), "592.1", ISSUED, ISSUED, KZ_CAL)
    assert (rf.full.minor, rf.due.minor, rf.deadline) == (2162500, 1081250, date(2026, 3, 12))
    return new_fine(ISSUED, rf.deadline, rf.full.minor, rf.due.minor)[0]


def ge_fine() -> FineFacts:
    rf = reduced_fine(load_jurisdiction("ge"), "speed-40", ISSUED, ISSUED, KZ_CAL)
    assert (rf.full.minor, rf.due.minor, rf.deadline) == (30000, 24000, date(2026, 3, 12))
    return new_fine(ISSUED, rf.deadline, rf.full.minor, rf.due.minor)[0]


class Life:
    """A fine lived day by day by the rules, as the daily run would, collecting what happened."""

    def __init__(self, rules: LifecycleRules, facts: FineFacts, calendar: HolidayCalendar = KZ_CAL) -> None:
        self.rules, self.facts, self.calendar = rules, facts, calendar
        self.day = facts.anchors["issued"]
        self.log: list[tuple[str, date, S]] = []
        self.run()

    def run(self) -> None:
        out = advance(self.rules, self.facts, self.day, self.calendar)
        for h in out.happenings:
            assert h.to_state in TRANSITIONS[h.from_state] or h.to_state is h.from_state
            self.log.append((h.step or h.kind.value, h.on, h.to_state))
        self.facts = out.facts
        again = advance(self.rules, self.facts, self.day, self.calendar)
        assert again.happenings == () and again.facts == self.facts  # a rerun on the same day does nothing
        assert out.next_on is None or out.next_on > self.day

    def until(self, day: date) -> Life:
        while self.day < day:
            self.day += timedelta(days=1)
            self.run()
        return self

    def days(self, n: int) -> Life:
        return self.until(self.day + timedelta(days=n))

    def pay(self, minor: int, value_date: date | None = None) -> PaymentOutcome:
        s = settle(self.rules, self.facts, value_date or self.day, minor)
        self.facts = s.facts
        return s.outcome

    def steps(self) -> list[str]:
        return [name for name, _on, _state in self.log]

    def on(self, name: str) -> date:
        return next(on for n, on, _s in self.log if n == name)


# --- the state table ----------------------------------------------------------------------------------------


def test_terminal_states_have_no_way_out_and_only_a_payment_makes_a_fine_paid() -> None:
    assert {S.CLOSED, S.TIME_BARRED, S.CANCELLED} == TERMINAL
    for state, targets in TRANSITIONS.items():
        if state in TERMINAL:
            assert not targets
        if state not in TERMINAL and state not in (S.PAID, S.PAID_REDUCED):
            assert {S.PAID, S.PAID_REDUCED, S.CANCELLED} <= targets  # a payment valued in time settles any
    with pytest.raises(TransitionRefused, match="from closed to due"):
        check_transition(S.CLOSED, S.DUE)
    with pytest.raises(TransitionRefused, match="from handed_over to discount_window"):
        check_transition(S.HANDED_OVER, S.DISCOUNT_WINDOW)


def test_a_rules_file_cannot_move_a_fine_outside_the_state_table() -> None:
    text = (
        'dataset = "l"\nversion = 1\njurisdiction = "XX"\ntimezone = "UTC"\nlanguages = ["en"]\nverified = false\n'
        'appeal_forfeits_discount = false\ndelivery_state = "due"\n'
        '[[step]]\nname = "jump"\nanchor = "issued"\nafter_days = 1\nwhen = ["unpaid"]\nstate = "handed_over"\n'
    )
    rules = parse_lifecycle(text, "xx")
    facts, _ = new_fine(ISSUED, ISSUED, 100, 50)
    with pytest.raises(TransitionRefused, match="from issued to handed_over \\(step jump of l@1\\)"):
        advance(rules, facts, ISSUED + timedelta(days=1), NO_HOLIDAYS)


# --- Kazakhstan ---------------------------------------------------------------------------------------------


def test_kz_paid_in_the_discount_window_settles_with_the_reduced_amount_and_closes() -> None:
    life = Life(KZ, kz_fine())
    assert life.facts.state is S.DISCOUNT_WINDOW
    life.until(date(2026, 3, 12))  # the last day of the 7 working days
    assert amount_due(KZ, life.facts, life.day) == amount_due(KZ, life.facts, ISSUED)
    assert life.pay(1081250) is PaymentOutcome.APPLIED
    assert life.facts.state is S.PAID_REDUCED
    life.days(1)
    assert life.facts.state is S.CLOSED
    assert life.steps() == ["discount", "close"]
    assert next_on(KZ, life.facts, KZ_CAL) is None
    life.days(400)
    assert life.steps() == ["discount", "close"]


def test_kz_unpaid_gets_the_demand_on_day_50_and_goes_to_the_bailiff_after_5_calendar_days() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 3, 13))
    assert life.facts.state is S.DUE and life.on("discount_end") == date(2026, 3, 13)
    assert amount_due(KZ, life.facts, date(2026, 3, 13)).kind is DueKind.FULL
    life.until(date(2026, 4, 20))
    assert life.facts.state is S.DUE
    life.days(1)  # 2 March + 50 days
    assert life.day == date(2026, 4, 21) and life.facts.state is S.DEMAND_SENT
    assert life.facts.anchors["demand.deadline"] == date(2026, 4, 26)  # "pay within 5 calendar days"
    life.until(date(2026, 4, 26))
    assert life.facts.state is S.DEMAND_SENT
    life.days(1)
    assert life.facts.state is S.HANDED_OVER and life.on("handover") == date(2026, 4, 27)
    life.days(400)
    assert life.steps() == ["discount", "discount_end", "demand", "handover"]


def test_kz_paid_late_before_the_demand_needs_the_full_fine() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 3, 20))
    assert life.pay(1081250) is PaymentOutcome.REFUND  # the reduced amount after the window: refunded
    assert life.facts.state is S.DUE
    assert life.pay(2162500) is PaymentOutcome.APPLIED
    assert life.facts.state is S.PAID
    life.days(100)
    assert life.steps() == ["discount", "discount_end", "close"]


def test_kz_paid_after_the_demand_ends_the_proceedings_without_a_bailiff() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 4, 24))
    assert life.facts.state is S.DEMAND_SENT
    assert life.pay(2162500) is PaymentOutcome.APPLIED
    life.days(60)
    assert life.steps() == ["discount", "discount_end", "demand", "close"]
    assert life.facts.state is S.CLOSED


def test_kz_paid_after_the_hand_over_recalls_the_bailiff() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 5, 4))
    assert life.facts.state is S.HANDED_OVER
    assert life.pay(2162500) is PaymentOutcome.APPLIED
    assert life.facts.state is S.PAID
    life.days(1)
    assert life.steps()[-2:] == ["recall", "close"]
    assert life.facts.state is S.CLOSED


def test_kz_payment_valued_in_time_but_known_after_the_hand_over_still_recalls() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 4, 28))
    assert life.facts.state is S.HANDED_OVER
    assert life.pay(2162500, value_date=date(2026, 4, 25)) is PaymentOutcome.APPLIED
    life.days(1)
    assert "recall" in life.steps() and life.facts.state is S.CLOSED


def test_kz_a_late_run_dates_the_demand_when_it_is_sent_and_the_window_end_when_it_ended() -> None:
    facts = kz_fine()
    out = advance(KZ, facts, date(2026, 4, 30), KZ_CAL)
    assert [(h.step, h.on) for h in out.happenings] == [
        ("discount", ISSUED),
        ("discount_end", date(2026, 3, 13)),
        ("demand", date(2026, 4, 30)),
    ]
    assert out.next_on == date(2026, 5, 6)  # the 5 days are counted from the SMS actually sent


def test_kz_appeal_pauses_the_clocks_and_a_rejected_appeal_adds_the_paused_days() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 3, 5))
    life.facts, h = open_appeal(life.facts, life.day, "ERAP-77")
    assert h.kind is HappeningKind.APPEAL_OPENED
    assert amount_due(KZ, life.facts, life.day).kind is DueKind.FULL  # an appeal excludes the discount in KZ
    life.until(date(2026, 6, 1))
    assert life.facts.state is S.DISCOUNT_WINDOW and life.steps() == ["discount"]
    assert next_on(KZ, life.facts, KZ_CAL) is None
    life.facts, h = close_appeal(life.facts, date(2026, 6, 1), upheld=False)
    assert h.detail == "rejected" and life.facts.pauses == (Pause(date(2026, 3, 5), date(2026, 6, 1)),)
    paused = (date(2026, 6, 1) - date(2026, 3, 5)).days
    life.until(date(2026, 9, 1))
    assert life.on("demand") == date(2026, 4, 21) + timedelta(days=paused)
    assert life.on("discount_end") == date(2026, 3, 13) + timedelta(days=paused)
    assert life.facts.state is S.HANDED_OVER


def test_kz_appeal_upheld_cancels_the_fine_for_good() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 4, 1))
    life.facts, _ = open_appeal(life.facts, life.day)
    life.facts, h = close_appeal(life.facts, date(2026, 4, 10), upheld=True, reference="decision 5")
    assert h.to_state is S.CANCELLED and h.detail == "upheld: decision 5"
    life.days(400)
    assert life.steps() == ["discount", "discount_end"]
    assert settle(KZ, life.facts, life.day, 2162500).reason is RefundReason.NOT_PAYABLE


def test_appeals_refuse_what_does_not_fit() -> None:
    facts = kz_fine()
    with pytest.raises(EventRefused, match="no appeal is open"):
        close_appeal(facts, ISSUED, upheld=False)
    opened, _ = open_appeal(facts, date(2026, 3, 5))
    with pytest.raises(EventRefused, match="already open"):
        open_appeal(opened, date(2026, 3, 6))
    with pytest.raises(EventRefused, match="cannot close on 2026-03-04"):
        close_appeal(opened, date(2026, 3, 4), upheld=False)
    closed, _ = close_appeal(opened, date(2026, 3, 10), upheld=False)
    with pytest.raises(EventRefused, match="cannot open on 2026-03-08"):
        open_appeal(closed, date(2026, 3, 8))
    cancelled, _ = cancel(facts, ISSUED, "protocol cancelled")
    with pytest.raises(EventRefused, match="cancelled fine cannot be appealed"):
        open_appeal(cancelled, ISSUED)


# --- Georgia ------------------------------------------------------------------------------------------------


def test_ge_sms_at_once_and_20_percent_off_within_10_days() -> None:
    life = Life(GE, ge_fine(), NO_HOLIDAYS)
    assert life.steps() == ["sms_issued"] and life.facts.state is S.DISCOUNT_WINDOW
    assert amount_due(GE, life.facts, date(2026, 3, 12)).minor == 24000
    assert amount_due(GE, life.facts, date(2026, 3, 13)).minor == 30000
    life.until(date(2026, 3, 10))
    assert life.pay(24000) is PaymentOutcome.APPLIED and life.facts.state is S.PAID_REDUCED
    life.days(400)
    assert life.steps() == ["sms_issued", "close"]


def test_ge_notice_delivered_then_unpaid_is_surcharged_then_enforced_then_time_barred() -> None:
    life = Life(GE, ge_fine(), NO_HOLIDAYS).until(date(2026, 3, 13))
    assert life.facts.state is S.NOTICE_SENT and life.on("notice1") == date(2026, 3, 13)
    life.until(date(2026, 3, 20))
    life.facts, h = record_delivery(GE, life.facts, "notice1", True, date(2026, 3, 18))
    assert h is not None and h.to_state is S.DUE
    assert record_delivery(GE, life.facts, "notice1", True, date(2026, 3, 19)) == (life.facts, None)
    with pytest.raises(EventRefused, match="already counted as delivered"):
        record_delivery(GE, life.facts, "notice1", False, date(2026, 3, 19))
    life.until(date(2026, 4, 17))  # delivered 18 March + 30 days to pay
    assert life.facts.state is S.DUE
    life.days(1)
    assert life.facts.state is S.SURCHARGED
    assert [life.on("overdue"), life.on("surcharge")] == [date(2026, 4, 18)] * 2
    assert amount_due(GE, life.facts, life.day).minor == 60000 and life.facts.surcharge_minor == 30000
    assert amount_due(GE, life.facts, life.day).kind is DueKind.SURCHARGED
    life.until(date(2026, 5, 18))
    assert life.facts.state is S.SURCHARGED
    life.days(1)
    assert life.facts.state is S.ENFORCEMENT and life.on("enforcement") == date(2026, 5, 19)
    life.until(date(2027, 3, 1))
    assert life.facts.state is S.ENFORCEMENT
    life.days(1)  # 2 March 2026 + 365 days
    assert life.facts.state is S.TIME_BARRED and life.on("time_bar") == date(2027, 3, 2)
    assert settle(GE, life.facts, life.day, 60000).reason is RefundReason.NOT_PAYABLE
    assert life.steps() == ["sms_issued", "notice1", "overdue", "surcharge", "enforcement", "time_bar"]


def test_ge_not_delivered_twice_is_published_and_deemed_delivered_on_the_30th_day() -> None:
    life = Life(GE, ge_fine(), NO_HOLIDAYS).until(date(2026, 3, 20))
    life.facts, h = record_delivery(GE, life.facts, "notice1", False, date(2026, 3, 20))
    assert h is not None and h.to_state is S.NOTICE_NOT_DELIVERED
    life.days(1)
    assert life.facts.state is S.NOTICE_SENT and life.on("notice2") == date(2026, 3, 21)
    life.until(date(2026, 3, 30))
    life.facts, _ = record_delivery(GE, life.facts, "notice2", False, date(2026, 3, 30))
    life.days(1)
    assert life.facts.state is S.PUBLISHED and life.on("publish") == date(2026, 3, 31)
    life.until(date(2026, 4, 29))
    assert life.facts.state is S.PUBLISHED
    life.days(1)
    assert life.facts.state is S.DEEMED_DELIVERED
    assert life.facts.anchors["delivered"] == date(2026, 4, 30) == life.on("deemed_delivery")
    life.until(date(2026, 5, 31))
    assert life.facts.state is S.SURCHARGED  # deemed 30 April + 30 days to pay
    assert life.pay(60000) is PaymentOutcome.APPLIED
    life.days(1)
    assert life.facts.state is S.CLOSED and "recall" not in life.steps()


def test_ge_a_notice_without_outcome_counts_as_undelivered_after_the_wait() -> None:
    life = Life(GE, ge_fine(), NO_HOLIDAYS).until(date(2026, 4, 11))
    assert life.facts.state is S.NOTICE_SENT
    life.days(1)  # 13 March + 30 days
    assert ("notice1", date(2026, 4, 12), S.NOTICE_NOT_DELIVERED) in life.log
    assert life.on("notice2") == date(2026, 4, 12) and life.facts.state is S.NOTICE_SENT
    with pytest.raises(EventRefused, match="already counted as undelivered on 2026-04-12"):
        record_delivery(GE, life.facts, "notice1", True, date(2026, 4, 12))
    life.facts, _ = record_delivery(GE, life.facts, "notice2", True, date(2026, 4, 20))
    assert life.facts.state is S.DUE and life.facts.anchors["delivered"] == date(2026, 4, 20)


def test_ge_paid_after_enforcement_recalls_it() -> None:
    life = Life(GE, ge_fine(), NO_HOLIDAYS).until(date(2026, 3, 15))
    life.facts, _ = record_delivery(GE, life.facts, "notice1", True, date(2026, 3, 15))
    life.until(date(2026, 6, 1))
    assert life.facts.state is S.ENFORCEMENT
    assert life.pay(59999) is PaymentOutcome.REFUND
    assert life.pay(60000) is PaymentOutcome.APPLIED
    life.days(1)
    assert life.steps()[-2:] == ["recall", "close"]


def test_ge_appeal_keeps_the_discount_and_moves_the_time_bar() -> None:
    life = Life(GE, ge_fine(), NO_HOLIDAYS).until(date(2026, 3, 5))
    life.facts, _ = open_appeal(life.facts, life.day)
    assert amount_due(GE, life.facts, date(2026, 4, 1)).kind is DueKind.REDUCED  # the clock is stopped
    life.facts, _ = close_appeal(life.facts, date(2026, 3, 25), upheld=False)
    assert amount_due(GE, life.facts, date(2026, 4, 1)).kind is DueKind.REDUCED  # 12 March + 20 days
    assert amount_due(GE, life.facts, date(2026, 4, 2)).kind is DueKind.FULL
    life.until(date(2026, 4, 2))
    assert life.on("notice1") == date(2026, 4, 2)
    life.facts, _ = record_delivery(GE, life.facts, "notice1", True, date(2026, 4, 3))
    life.until(date(2027, 3, 30))
    assert "time_bar" in life.steps() and life.on("time_bar") == date(2027, 3, 22)


def test_deliveries_that_do_not_fit_are_refused() -> None:
    facts = advance(GE, ge_fine(), date(2026, 3, 13), NO_HOLIDAYS).facts
    with pytest.raises(EventRefused, match="no step 'notice9'"):
        record_delivery(GE, facts, "notice9", True, date(2026, 3, 14))
    with pytest.raises(EventRefused, match="sends no postal notice"):
        record_delivery(GE, facts, "sms_issued", True, date(2026, 3, 14))
    with pytest.raises(EventRefused, match="notice2 was never sent"):
        record_delivery(GE, facts, "notice2", True, date(2026, 3, 14))
    with pytest.raises(EventRefused, match="before notice notice1 was sent"):
        record_delivery(GE, facts, "notice1", True, date(2026, 3, 12))


# --- payments -----------------------------------------------------------------------------------------------


def test_payments_are_checked_against_what_is_due_on_their_value_date() -> None:
    facts = kz_fine()
    over = settle(KZ, facts, date(2026, 3, 3), 2162500)
    assert (over.outcome, over.reason, over.applied_minor, over.refund_minor) == (
        PaymentOutcome.APPLIED, RefundReason.OVERPAYMENT, 1081250, 1081250,
    )  # fmt: skip
    assert over.facts.state is S.PAID_REDUCED
    again = settle(KZ, over.facts, date(2026, 3, 4), 1081250)
    assert (again.outcome, again.reason, again.refund_minor) == (
        PaymentOutcome.REFUND,
        RefundReason.ALREADY_PAID,
        1081250,
    )
    under = settle(KZ, facts, date(2026, 3, 3), 1081249)
    assert (under.reason, under.facts) == (RefundReason.UNDERPAYMENT, facts)
    exact = settle(KZ, facts, date(2026, 3, 3), 1081250)
    assert (exact.reason, exact.refund_minor, exact.facts.anchors["paid"]) == (None, 0, date(2026, 3, 3))
    with pytest.raises(EventRefused, match="positive"):
        settle(KZ, facts, date(2026, 3, 3), 0)


def test_a_payment_valued_before_the_fine_was_issued_earns_no_discount() -> None:
    assert amount_due(KZ, kz_fine(), date(2026, 3, 1)).kind is DueKind.FULL


def test_new_fine_refuses_inconsistent_amounts_and_dates() -> None:
    with pytest.raises(EventRefused, match="reduced amount"):
        new_fine(ISSUED, ISSUED, 100, 101)
    with pytest.raises(EventRefused, match="before the issue date"):
        new_fine(ISSUED, ISSUED - timedelta(days=1), 100, 50)


def test_cancelling_twice_changes_nothing_and_a_closed_fine_cannot_be_cancelled() -> None:
    facts, h = cancel(kz_fine(), ISSUED, "protocol cancelled on the device")
    assert h is not None and facts.state is S.CANCELLED
    assert cancel(facts, ISSUED, "again") == (facts, None)
    paid = settle(KZ, kz_fine(), ISSUED, 1081250).facts
    closed = advance(KZ, paid, date(2026, 3, 3), KZ_CAL).facts
    with pytest.raises(TransitionRefused):
        cancel(closed, ISSUED, "too late")


# --- working days and pauses --------------------------------------------------------------------------------

WORKING = """
dataset = "lifecycle-xx"
version = 1
jurisdiction = "XX"
timezone = "UTC"
languages = ["en"]
verified = false
appeal_forfeits_discount = false
delivery_state = "due"

[[step]]
name = "remind"
anchor = "issued"
after_days = 3
count = "working"
when = ["unpaid"]
actions = ["sms"]
template = "t"

[[step]]
name = "pay_period_end"
anchor = "issued"
after_days = 10
count = "working"
when = ["unpaid"]
state = "due"

[[step]]
name = "appeal_ack"
anchor = "issued"
after_days = 0
when = ["unpaid", "appealed"]
actions = ["sms"]
template = "t"

[templates.t]
en = "{number}"
"""


def test_working_day_triggers_skip_weekends_and_the_calendars_holidays() -> None:
    rules = parse_lifecycle(WORKING, "xx")
    friday = date(2026, 3, 6)
    calendar = HolidayCalendar.from_dates([date(2026, 3, 10)])  # a Tuesday off
    facts, _ = new_fine(friday, friday, 100, 100)
    assert next_on(rules, facts, calendar) == date(2026, 3, 12)  # Mon 9, (Tue 10 off), Wed 11, Thu 12
    out = advance(rules, facts, date(2026, 3, 12), calendar)
    assert [h.step for h in out.happenings] == ["remind"]
    assert out.next_on == date(2026, 3, 23)
    assert advance(rules, facts, date(2026, 3, 22), calendar).facts.state is S.ISSUED
    assert advance(rules, facts, date(2026, 3, 23), calendar).facts.state is S.DUE


def test_a_step_for_appeals_fires_only_while_one_is_open() -> None:
    rules = parse_lifecycle(WORKING, "xx")
    facts, _ = new_fine(date(2026, 3, 6), date(2026, 3, 6), 100, 100)
    assert "appeal_ack" not in [
        h.step for h in advance(rules, facts, date(2026, 3, 30), NO_HOLIDAYS).happenings
    ]
    appealed, _ = open_appeal(facts, date(2026, 3, 7))
    out = advance(rules, appealed, date(2026, 3, 30), NO_HOLIDAYS)
    assert [h.step for h in out.happenings] == ["appeal_ack"]


@pytest.mark.parametrize(
    ("origin", "due", "pauses", "expected"),
    [
        (date(2026, 1, 1), date(2026, 1, 31), (), date(2026, 1, 31)),
        (
            date(2026, 1, 1),
            date(2026, 1, 31),
            (Pause(date(2026, 1, 10), date(2026, 1, 20)),),
            date(2026, 2, 10),
        ),
        (
            date(2026, 1, 15),
            date(2026, 1, 31),
            (Pause(date(2026, 1, 10), date(2026, 1, 20)),),
            date(2026, 2, 5),
        ),
        (
            date(2026, 1, 25),
            date(2026, 1, 31),
            (Pause(date(2026, 1, 10), date(2026, 1, 20)),),
            date(2026, 1, 31),
        ),
        (
            date(2026, 1, 1),
            date(2026, 1, 5),
            (Pause(date(2026, 1, 10), date(2026, 1, 20)),),
            date(2026, 1, 5),
        ),
        (date(2026, 1, 1), date(2026, 1, 31), (Pause(date(2026, 1, 10)),), None),
        (date(2026, 1, 1), date(2026, 1, 5), (Pause(date(2026, 1, 10)),), date(2026, 1, 5)),
        (  # the first pause pushes the date past the start of the second
            date(2026, 1, 1),
            date(2026, 1, 15),
            (Pause(date(2026, 1, 20), date(2026, 1, 25)), Pause(date(2026, 1, 10), date(2026, 1, 20))),
            date(2026, 1, 30),
        ),
    ],
)
def test_paused_days_move_only_the_periods_they_interrupted(
    origin: date, due: date, pauses: tuple[Pause, ...], expected: date | None
) -> None:
    assert after_pauses(origin, due, pauses) == expected


# --- properties ---------------------------------------------------------------------------------------------

Event = tuple[int, str, int]  # (day offset, kind, value)


@st.composite
def years(draw: st.DrawFn) -> tuple[str, list[Event]]:
    jur = draw(st.sampled_from(["kz", "ge"]))
    kinds = st.sampled_from(["pay", "deliver", "undeliver", "appeal", "decide", "run"])
    events = draw(st.lists(st.tuples(st.integers(0, 420), kinds, st.integers(0, 3)), max_size=12))
    return jur, sorted(events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(years())
def test_any_year_of_events_keeps_the_fine_inside_the_state_table(year: tuple[str, list[Event]]) -> None:
    """Whatever happens in whatever order, every change is an allowed transition, each step happens once,
    a rerun on the same day does nothing, and a settled fine only closes."""
    jur, events = year
    rules, facts = (KZ, kz_fine()) if jur == "kz" else (GE, ge_fine())
    cal = KZ_CAL if jur == "kz" else NO_HOLIDAYS
    seen: list[str] = []
    for offset, kind, value in events:
        day = ISSUED + timedelta(days=offset)
        out = advance(rules, facts, day, cal)
        facts = out.facts
        for h in out.happenings:
            assert h.to_state is h.from_state or h.to_state in TRANSITIONS[h.from_state]
            if h.kind is HappeningKind.STEP:
                assert h.step not in seen
                seen.append(h.step or "")
        assert out.next_on is None or out.next_on > day
        assert advance(rules, facts, day, cal).happenings == ()
        try:
            if kind == "pay":
                due = amount_due(rules, facts, day).minor
                before = facts.state
                s = settle(rules, facts, day, due + value - 1 if value else due)
                if s.outcome is PaymentOutcome.APPLIED:
                    assert s.facts.state in TRANSITIONS[before]
                facts = s.facts
            elif kind in ("deliver", "undeliver"):
                facts = record_delivery(
                    rules, facts, "notice1" if value % 2 else "notice2", kind == "deliver", day
                )[0]
            elif kind == "appeal":
                facts = open_appeal(facts, day)[0]
            elif kind == "decide":
                facts = close_appeal(facts, day, upheld=value == 3)[0]
        except (EventRefused, TransitionRefused):
            pass
    if facts.paid:
        final = advance(rules, facts, ISSUED + timedelta(days=800), cal).facts
        assert final.state in (S.CLOSED, S.PAID, S.PAID_REDUCED)
    assert all(Action.SMS not in rules.step(n).actions or n in facts.anchors for n in seen)


def test_a_payment_valued_inside_the_window_settles_with_the_reduced_amount_whatever_happened_since() -> None:
    life = Life(KZ, kz_fine()).until(date(2026, 4, 30))
    assert life.facts.state is S.HANDED_OVER
    assert life.pay(1081250, value_date=date(2026, 3, 10)) is PaymentOutcome.APPLIED
    assert life.facts.state is S.PAID_REDUCED
    life.days(1)
    assert life.steps()[-2:] == ["recall", "close"]
