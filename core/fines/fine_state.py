"""The states of a fine after the stop, and the one table of transitions between them.

Every change of a fine's state, whether made by a lifecycle step, a payment, a postal delivery outcome or an
appeal, goes through ``check_transition``; anything not in ``TRANSITIONS`` is refused with
``TransitionRefused`` naming both states. A rules file may only move a fine along these edges.
"""

from __future__ import annotations

import enum

from core.fines.errors import FineError


class FineState(enum.StrEnum):
    ISSUED = "issued"
    DISCOUNT_WINDOW = "discount_window"
    DUE = "due"
    OVERDUE = "overdue"
    DEMAND_SENT = "demand_sent"  # KZ: SMS demand, a few calendar days to pay
    HANDED_OVER = "handed_over"  # KZ: the enforcement document went to a private bailiff
    NOTICE_SENT = "notice_sent"  # GE: a postal notice is on its way
    NOTICE_NOT_DELIVERED = "notice_not_delivered"
    PUBLISHED = "published"  # GE: on the publication list; delivery is deemed after a period
    DEEMED_DELIVERED = "deemed_delivered"
    SURCHARGED = "surcharged"
    ENFORCEMENT = "enforcement"
    PAID = "paid"
    PAID_REDUCED = "paid_reduced"
    CLOSED = "closed"
    TIME_BARRED = "time_barred"
    CANCELLED = "cancelled"


S = FineState

# A payment may settle the fine in every state that still owes money.
_OWING = (
    S.ISSUED,
    S.DISCOUNT_WINDOW,
    S.DUE,
    S.OVERDUE,
    S.DEMAND_SENT,
    S.HANDED_OVER,
    S.NOTICE_SENT,
    S.NOTICE_NOT_DELIVERED,
    S.PUBLISHED,
    S.DEEMED_DELIVERED,
    S.SURCHARGED,
    S.ENFORCEMENT,
)

_STEPS: dict[FineState, tuple[FineState, ...]] = {
    S.ISSUED: (S.DISCOUNT_WINDOW, S.DUE),
    S.DISCOUNT_WINDOW: (S.DUE, S.NOTICE_SENT, S.OVERDUE),
    S.DUE: (S.OVERDUE, S.DEMAND_SENT, S.NOTICE_SENT, S.SURCHARGED),
    S.OVERDUE: (S.DEMAND_SENT, S.SURCHARGED, S.HANDED_OVER, S.ENFORCEMENT),
    S.DEMAND_SENT: (S.HANDED_OVER,),
    S.HANDED_OVER: (S.CLOSED,),
    S.NOTICE_SENT: (S.NOTICE_NOT_DELIVERED, S.DUE, S.PUBLISHED),
    S.NOTICE_NOT_DELIVERED: (S.NOTICE_SENT, S.PUBLISHED, S.DUE),
    S.PUBLISHED: (S.DEEMED_DELIVERED, S.DUE),
    S.DEEMED_DELIVERED: (S.DUE, S.OVERDUE),
    S.SURCHARGED: (S.ENFORCEMENT, S.HANDED_OVER),
    S.ENFORCEMENT: (S.CLOSED,),
    S.PAID: (S.CLOSED,),
    S.PAID_REDUCED: (S.CLOSED,),
    S.CLOSED: (),
    S.TIME_BARRED: (),
    S.CANCELLED: (),
}


def _table() -> dict[FineState, frozenset[FineState]]:
    table = {state: set(targets) for state, targets in _STEPS.items()}
    for state in _OWING:  # the value date, not the state, says whether the reduced amount settled it
        table[state] |= {S.PAID, S.PAID_REDUCED, S.CANCELLED, S.TIME_BARRED}
    return {state: frozenset(targets) for state, targets in table.items()}


TRANSITIONS: dict[FineState, frozenset[FineState]] = _table()

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
SETTLED = frozenset({S.PAID, S.PAID_REDUCED, S.CLOSED, S.TIME_BARRED, S.CANCELLED})
UNPAID = frozenset(FineState) - SETTLED  # still owes money: counted by the unpaid look-up
PAID_STATES = frozenset({S.PAID, S.PAID_REDUCED})
# States a lifecycle step may not set: only a payment makes a fine paid.
PAYMENT_ONLY = PAID_STATES


class TransitionRefused(FineError):
    """A state change not in the transition table."""

    def __init__(self, current: FineState, target: FineState, why: str = "") -> None:
        detail = f" ({why})" if why else ""
        super().__init__(f"a fine cannot go from {current.value} to {target.value}{detail}")
        self.current = current
        self.target = target


def check_transition(current: FineState, target: FineState, why: str = "") -> FineState:
    """``target`` when the table allows ``current`` → ``target``; else ``TransitionRefused``."""
    if target not in TRANSITIONS[current]:
        raise TransitionRefused(current, target, why)
    return target
