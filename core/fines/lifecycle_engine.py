"""The fine lifecycle as pure functions: which steps are due on a day, and what payments, postal outcomes and
appeals do to a fine. No clock, no I/O: the server passes the day, the fine's facts and the holiday calendar,
and stores what comes back.

A fine's ``FineFacts`` are its state, its dated anchors (see ``core.fines.lifecycle_rules``), its amounts and
its appeal pauses. ``advance(rules, facts, today, calendar)`` takes every step whose date has come and whose
conditions hold, earliest first (in file order on the same day), each at most once, and returns the new facts,
what happened (``Happening``) and the next day on which something may happen by itself (``next_on``).

**Dates.** A step is due ``after_days`` calendar or working days after its anchor. A step that tells someone
(SMS, post, publication, bailiff) is dated the day it is actually taken; any other step (overdue, deemed
delivery, time bar) the day it was due, so a late run changes no legal date.

**Appeals pause the clocks.** While an appeal or complaint is open no step fires (except one whose ``when``
says ``appealed``). When it closes rejected, every period that was running is longer by the days it was
paused: a step's date moves by the part of each pause that falls between its clock's start (the anchor, or
for ``discount_deadline`` / ``<step>.deadline`` the day that period began) and the date itself. An appeal
upheld cancels the fine. With ``appeal_forfeits_discount`` an appeal takes the reduced amount away.

**Payments** are checked against what is due on their value date (``amount_due``): the reduced amount inside
the discount window, else the full fine, plus the surcharge once it was added. An exact payment settles the
fine; more settles it and the excess is refunded; less, or any payment of a fine already paid or closed,
settles nothing and is refunded whole. Nothing is accepted silently.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from fractions import Fraction

from core.fines.errors import FineError
from core.fines.fine_state import PAID_STATES, TERMINAL, FineState, check_transition
from core.fines.holiday_calendar import HolidayCalendar
from core.fines.jurisdiction import DayCount
from core.fines.lifecycle_rules import Action, Condition, LifecycleRules, Step
from core.money import Rounding, round_fraction

S = FineState
_DELIVERY_WAITING = frozenset({S.NOTICE_SENT, S.NOTICE_NOT_DELIVERED, S.PUBLISHED})


class HappeningKind(enum.StrEnum):
    CREATED = "created"
    STEP = "step"
    NOTICE_TIMEOUT = "notice_timeout"
    DELIVERY = "delivery"
    PAYMENT = "payment"
    APPEAL_OPENED = "appeal_opened"
    APPEAL_CLOSED = "appeal_closed"
    CANCELLED = "cancelled"


class DueKind(enum.StrEnum):
    REDUCED = "reduced"
    FULL = "full"
    SURCHARGED = "surcharged"


class PaymentOutcome(enum.StrEnum):
    APPLIED = "applied"  # settled the fine (any excess is refunded)
    REFUND = "refund"  # settled nothing: the whole amount goes back


class RefundReason(enum.StrEnum):
    OVERPAYMENT = "overpayment"
    UNDERPAYMENT = "underpayment"
    ALREADY_PAID = "already_paid"
    NOT_PAYABLE = "not_payable"  # cancelled, time-barred or closed without payment
    UNKNOWN_FINE = "unknown_fine"
    WRONG_CURRENCY = "wrong_currency"


class EventRefused(FineError):
    """A payment, postal outcome or appeal change that does not fit the fine (the message says why)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """An appeal or complaint: the clocks stop from ``start`` until ``end`` (None while it is open)."""

    start: date
    end: date | None = None


@dataclass(frozen=True, slots=True)
class FineFacts:
    """What the lifecycle knows about one fine (amounts in minor units)."""

    state: FineState
    anchors: Mapping[str, date]
    full_minor: int
    reduced_minor: int
    surcharge_minor: int = 0
    pauses: tuple[Pause, ...] = ()

    @property
    def appealed(self) -> bool:
        return any(p.end is None for p in self.pauses)

    @property
    def paid(self) -> bool:
        return "paid" in self.anchors or self.state in PAID_STATES


@dataclass(frozen=True, slots=True)
class Happening:
    """One thing that happened to a fine: a step, a timeout, or an event from outside."""

    kind: HappeningKind
    on: date
    from_state: FineState
    to_state: FineState
    step: str | None = None
    actions: tuple[Action, ...] = ()
    deadline: date | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Advance:
    facts: FineFacts
    happenings: tuple[Happening, ...]
    next_on: date | None


@dataclass(frozen=True, slots=True)
class Due:
    minor: int
    kind: DueKind


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a payment does: applied or refunded, why, and the fine afterwards."""

    outcome: PaymentOutcome
    reason: RefundReason | None
    due: Due | None
    applied_minor: int
    refund_minor: int
    facts: FineFacts
    happening: Happening | None = None


@dataclass
class _Work:
    state: FineState
    anchors: dict[str, date]
    surcharge_minor: int
    happenings: list[Happening] = field(default_factory=list)


def new_fine(
    issued_on: date, discount_deadline: date, full_minor: int, reduced_minor: int
) -> tuple[FineFacts, Happening]:
    """The facts of a fine just issued (state ``issued``)."""
    if reduced_minor > full_minor or reduced_minor < 0:
        raise EventRefused(f"reduced amount {reduced_minor} must be between 0 and the full {full_minor}")
    if discount_deadline < issued_on:
        raise EventRefused(f"discount deadline {discount_deadline} is before the issue date {issued_on}")
    facts = FineFacts(
        S.ISSUED, {"issued": issued_on, "discount_deadline": discount_deadline}, full_minor, reduced_minor
    )
    return facts, Happening(HappeningKind.CREATED, issued_on, S.ISSUED, S.ISSUED)


# --- dates --------------------------------------------------------------------------------------------------


def _origin(anchor: str, anchors: Mapping[str, date]) -> date | None:
    """The day the clock of a period measured from ``anchor`` started."""
    if anchor == "discount_deadline":
        return anchors.get("issued")
    if anchor.endswith(".deadline"):
        return anchors.get(anchor.removesuffix(".deadline"))
    return anchors.get(anchor)


def after_pauses(origin: date, due: date, pauses: Iterable[Pause]) -> date | None:
    """``due`` moved by the paused days between ``origin`` and it; None while an open pause stops it."""
    for pause in sorted(pauses, key=lambda p: p.start):
        if pause.end is not None and pause.end <= origin:
            continue
        start = max(pause.start, origin)
        if start > due:
            continue
        if pause.end is None:
            return None
        due += pause.end - start
    return due


def _count(start: date, days: int, count: DayCount, calendar: HolidayCalendar) -> date:
    if count is DayCount.WORKING:
        return calendar.add_working_days(start, days)
    return start + timedelta(days=days)


def step_date(
    step: Step, anchors: Mapping[str, date], pauses: tuple[Pause, ...], calendar: HolidayCalendar
) -> date | None:
    """The day ``step`` is due: None while its anchor is unknown or an open appeal holds it."""
    base = anchors.get(step.anchor)
    if base is None:
        return None
    due = _count(base, step.after_days, step.count, calendar)
    if Condition.APPEALED in step.when:
        return due
    if any(p.end is None for p in pauses):
        return None
    origin = _origin(step.anchor, anchors) or base
    return after_pauses(origin, due, pauses)


def _holds(step: Step, paid: bool, appealed: bool, anchors: Mapping[str, date]) -> bool:
    for cond in step.when:
        if (
            (cond is Condition.PAID and not paid)
            or (cond is Condition.UNPAID and paid)
            or (cond is Condition.APPEALED and not appealed)
            or (cond is Condition.NOT_APPEALED and appealed)
            or (cond is Condition.DELIVERED and "delivered" not in anchors)
            or (cond is Condition.NOT_DELIVERED and "delivered" in anchors)
        ):
            return False
    return all(req in anchors for req in step.requires)


def _notice_timeout(step: Step, anchors: Mapping[str, date], pauses: tuple[Pause, ...]) -> date | None:
    """When a sent postal notice with no outcome counts as undelivered (None: not sent, or has an outcome)."""
    sent = anchors.get(step.name)
    if sent is None or step.outcome_wait_days is None:
        return None
    if f"{step.name}.delivered" in anchors or f"{step.name}.undelivered" in anchors:
        return None
    if any(p.end is None for p in pauses):
        return None
    return after_pauses(sent, sent + timedelta(days=step.outcome_wait_days), pauses)


def _candidates(
    rules: LifecycleRules, work: _Work, pauses: tuple[Pause, ...], calendar: HolidayCalendar
) -> list[tuple[date, int, int, Step]]:
    """(due day, kind, file order, step) of everything that can still happen by itself."""
    if work.state in TERMINAL:
        return []
    paid = "paid" in work.anchors or work.state in PAID_STATES
    appealed = any(p.end is None for p in pauses)
    found: list[tuple[date, int, int, Step]] = []
    for index, step in enumerate(rules.steps):
        if step.name in work.anchors:
            timeout = _notice_timeout(step, work.anchors, pauses)
            if timeout is not None and not paid:
                found.append((timeout, 1, index, step))
            continue
        if not _holds(step, paid, appealed, work.anchors):
            continue
        due = step_date(step, work.anchors, pauses, calendar)
        if due is not None:
            found.append((due, 0, index, step))
    return found


def surcharge_amount(rules: LifecycleRules, full_minor: int) -> int:
    rule = rules.surcharge
    if rule is None:
        return 0
    share = round_fraction(Fraction(full_minor * rule.percent, 100), Rounding.DOWN)
    return share + rule.fixed_minor


def _take_step(
    rules: LifecycleRules, work: _Work, step: Step, due: date, today: date, full_minor: int
) -> None:
    dated = today if step.outbound else due
    before = work.state
    if step.state is not None and step.state is not work.state:
        work.state = check_transition(work.state, step.state, f"step {step.name} of {rules.label}")
    work.anchors[step.name] = dated
    deadline = None
    if step.pay_within_days is not None:
        deadline = dated + timedelta(days=step.pay_within_days)
        work.anchors[f"{step.name}.deadline"] = deadline
    for action in step.actions:
        if action is Action.SURCHARGE:
            work.surcharge_minor = surcharge_amount(rules, full_minor)
            work.anchors["surcharged"] = dated
        elif action is Action.DEEM_DELIVERED:
            work.anchors.setdefault("delivered", dated)
    work.happenings.append(
        Happening(HappeningKind.STEP, dated, before, work.state, step.name, step.actions, deadline)
    )


def _take_timeout(work: _Work, step: Step, due: date) -> None:
    before = work.state
    if work.state is S.NOTICE_SENT:
        work.state = check_transition(work.state, S.NOTICE_NOT_DELIVERED, f"no outcome of {step.name}")
    work.anchors[f"{step.name}.undelivered"] = due
    detail = f"no delivery outcome within {step.outcome_wait_days} days"
    work.happenings.append(
        Happening(HappeningKind.NOTICE_TIMEOUT, due, before, work.state, step.name, (), None, detail)
    )


def advance(rules: LifecycleRules, facts: FineFacts, today: date, calendar: HolidayCalendar) -> Advance:
    """Take every step due on or before ``today``; ``TransitionRefused`` if the rules break the state table."""
    work = _Work(facts.state, dict(facts.anchors), facts.surcharge_minor)
    while True:
        ready = [c for c in _candidates(rules, work, facts.pauses, calendar) if c[0] <= today]
        if not ready:
            break
        due, kind, _index, step = min(ready, key=lambda c: c[:3])
        if kind == 0:
            _take_step(rules, work, step, due, today, facts.full_minor)
        else:
            _take_timeout(work, step, due)
    later = [c[0] for c in _candidates(rules, work, facts.pauses, calendar)]
    after = replace(facts, state=work.state, anchors=work.anchors, surcharge_minor=work.surcharge_minor)
    return Advance(after, tuple(work.happenings), min(later) if later else None)


def next_on(rules: LifecycleRules, facts: FineFacts, calendar: HolidayCalendar) -> date | None:
    """The earliest day on which something may happen to the fine by itself (None: nothing will)."""
    work = _Work(facts.state, dict(facts.anchors), facts.surcharge_minor)
    found = [c[0] for c in _candidates(rules, work, facts.pauses, calendar)]
    return min(found) if found else None


# --- what is due --------------------------------------------------------------------------------------------


def discount_deadline(facts: FineFacts) -> date | None:
    """The last day of the reduced amount, moved by appeal pauses (None while an open appeal holds it)."""
    deadline = facts.anchors["discount_deadline"]
    return after_pauses(facts.anchors["issued"], deadline, facts.pauses)


def amount_due(rules: LifecycleRules, facts: FineFacts, on: date) -> Due:
    """What settles the fine with a payment whose value date is ``on``."""
    surcharged = facts.anchors.get("surcharged")
    if surcharged is not None and surcharged <= on:
        return Due(facts.full_minor + facts.surcharge_minor, DueKind.SURCHARGED)
    forfeited = rules.appeal_forfeits_discount and any(p.start <= on for p in facts.pauses)
    deadline = discount_deadline(facts)
    if not forfeited and on >= facts.anchors["issued"] and (deadline is None or on <= deadline):
        return Due(facts.reduced_minor, DueKind.REDUCED)
    return Due(facts.full_minor, DueKind.FULL)


def settle(rules: LifecycleRules, facts: FineFacts, value_date: date, amount_minor: int) -> Settlement:
    """Decide what a payment of ``amount_minor`` with ``value_date`` does to the fine."""
    if amount_minor <= 0:
        raise EventRefused(f"a payment must be a positive amount, got {amount_minor}")
    if facts.paid:
        return Settlement(PaymentOutcome.REFUND, RefundReason.ALREADY_PAID, None, 0, amount_minor, facts)
    if facts.state in TERMINAL:
        return Settlement(PaymentOutcome.REFUND, RefundReason.NOT_PAYABLE, None, 0, amount_minor, facts)
    due = amount_due(rules, facts, value_date)
    if amount_minor < due.minor:
        return Settlement(PaymentOutcome.REFUND, RefundReason.UNDERPAYMENT, due, 0, amount_minor, facts)
    target = S.PAID_REDUCED if due.kind is DueKind.REDUCED else S.PAID
    new_state = check_transition(facts.state, target, "payment")
    anchors = {**facts.anchors, "paid": value_date}
    after = replace(facts, state=new_state, anchors=anchors)
    detail = f"{amount_minor} paid, {due.minor} due ({due.kind.value})"
    happening = Happening(HappeningKind.PAYMENT, value_date, facts.state, new_state, detail=detail)
    excess = amount_minor - due.minor
    reason = RefundReason.OVERPAYMENT if excess else None
    return Settlement(PaymentOutcome.APPLIED, reason, due, due.minor, excess, after, happening)


# --- postal outcomes, appeals, cancellation -----------------------------------------------------------------


def record_delivery(
    rules: LifecycleRules, facts: FineFacts, step_name: str, delivered: bool, on: date
) -> tuple[FineFacts, Happening | None]:
    """A postal notice's outcome. The same outcome twice changes nothing (None); a different one is refused."""
    try:
        step = rules.step(step_name)
    except KeyError:
        raise EventRefused(f"{rules.label} has no step {step_name!r}") from None
    if Action.POSTAL_NOTICE not in step.actions:
        raise EventRefused(f"step {step_name} of {rules.label} sends no postal notice")
    sent = facts.anchors.get(step_name)
    if sent is None:
        raise EventRefused(f"notice {step_name} was never sent")
    if on < sent:
        raise EventRefused(f"outcome dated {on}, before notice {step_name} was sent on {sent}")
    mine, other = (".delivered", ".undelivered") if delivered else (".undelivered", ".delivered")
    if step_name + mine in facts.anchors:
        return facts, None
    if step_name + other in facts.anchors:
        was = "undelivered" if delivered else "delivered"
        raise EventRefused(
            f"notice {step_name} already counted as {was} on {facts.anchors[step_name + other]}"
        )
    anchors = dict(facts.anchors)
    anchors[step_name + mine] = on
    state = facts.state
    if delivered:
        anchors.setdefault("delivered", on)
        if state in _DELIVERY_WAITING:
            state = check_transition(state, rules.delivery_state, f"{step_name} delivered")
    elif state is S.NOTICE_SENT:
        state = check_transition(state, S.NOTICE_NOT_DELIVERED, f"{step_name} not delivered")
    what = "delivered" if delivered else "not delivered"
    happening = Happening(HappeningKind.DELIVERY, on, facts.state, state, step_name, detail=what)
    return replace(facts, state=state, anchors=anchors), happening


def open_appeal(facts: FineFacts, on: date, reference: str = "") -> tuple[FineFacts, Happening]:
    """An appeal or complaint is open from ``on``: the clocks stop."""
    if facts.appealed:
        raise EventRefused("an appeal is already open")
    if facts.state in TERMINAL:
        raise EventRefused(f"a {facts.state.value} fine cannot be appealed")
    last_end = max((p.end for p in facts.pauses if p.end is not None), default=None)
    if on < facts.anchors["issued"] or (last_end is not None and on < last_end):
        raise EventRefused(f"an appeal cannot open on {on}: before the fine or an earlier appeal's end")
    after = replace(facts, pauses=(*facts.pauses, Pause(on)))
    return after, Happening(HappeningKind.APPEAL_OPENED, on, facts.state, facts.state, detail=reference)


def close_appeal(
    facts: FineFacts, on: date, upheld: bool, reference: str = ""
) -> tuple[FineFacts, Happening]:
    """The open appeal is decided: upheld cancels the fine, rejected restarts the clocks (paused days added)."""
    open_ = [p for p in facts.pauses if p.end is None]
    if not open_:
        raise EventRefused("no appeal is open")
    if on < open_[0].start:
        raise EventRefused(f"an appeal opened on {open_[0].start} cannot close on {on}")
    pauses = tuple(Pause(p.start, on) if p.end is None else p for p in facts.pauses)
    state = facts.state
    if upheld and not facts.paid:
        state = check_transition(state, S.CANCELLED, "appeal upheld")
    detail = ("upheld" if upheld else "rejected") + (f": {reference}" if reference else "")
    happening = Happening(HappeningKind.APPEAL_CLOSED, on, facts.state, state, detail=detail)
    return replace(facts, state=state, pauses=pauses), happening


def cancel(facts: FineFacts, on: date, reason: str) -> tuple[FineFacts, Happening | None]:
    """The protocol was cancelled; a fine already cancelled stays so (None)."""
    if facts.state is S.CANCELLED:
        return facts, None
    state = check_transition(facts.state, S.CANCELLED, reason)
    return replace(facts, state=state), Happening(
        HappeningKind.CANCELLED, on, facts.state, state, detail=reason
    )
