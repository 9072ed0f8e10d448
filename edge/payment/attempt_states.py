"""The states of a payment attempt and the one table of transitions allowed between them.

An attempt follows the ZVT sequence (zvt.md §14): opened → card read → (own-card check) → authorising → the
terminal's result saved → paid. Each step can end it: card not read, refused by the own-card check,
aborted on the terminal, declined, reversed. When the line or the process dies while the terminal holds the
result, the attempt is **in doubt**: it blocks its own protocol (never the device) until evidence settles it
as paid, not charged or reversed (``edge.payment.recovery``, ``edge.payment.settlement``).

A transition not in ``TRANSITIONS`` raises ``IllegalTransition`` naming both states: a second process, a
late callback or a bug cannot move an attempt backwards or out of an end state.
"""

from __future__ import annotations

import enum


class AttemptState(enum.StrEnum):
    STARTED = "started"
    CARD_READ = "card_read"
    CARD_FAILED = "card_failed"  # no card, unreadable, expired: the terminal ended Read Card
    REFUSED = "refused"  # the own-card check refused the card; card released (06 B0)
    ABORTED = "aborted"  # an officer's question could not be answered: aborted on the terminal (06 B0)
    ABANDONED = "abandoned"  # the process ended before the authorisation: nothing was sent to charge
    AUTHORISING = "authorising"  # 06 01 sent, no result saved yet
    RESULT_PERSISTED = "result_persisted"  # approved 04 0F saved, acknowledgement being sent
    IN_DOUBT = "in_doubt"  # the result is unknown: blocks this protocol until settled by evidence
    PAID = "paid"
    DECLINED = "declined"
    REVERSED = "reversed"  # the terminal reversed it (our 84 answer, or no answer reached it)
    NOT_CHARGED = "not_charged"  # evidence shows no booking
    FAILED = (
        "failed"  # ended before any charge: line lost during Read Card, currency refused, command refused
    )


S = AttemptState

TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    S.STARTED: frozenset({S.CARD_READ, S.CARD_FAILED, S.FAILED, S.ABORTED, S.ABANDONED}),
    S.CARD_READ: frozenset({S.AUTHORISING, S.REFUSED, S.ABORTED, S.ABANDONED}),
    S.AUTHORISING: frozenset(
        {S.RESULT_PERSISTED, S.DECLINED, S.REVERSED, S.FAILED, S.IN_DOUBT, S.PAID, S.NOT_CHARGED}
    ),
    S.RESULT_PERSISTED: frozenset({S.PAID, S.IN_DOUBT, S.REVERSED, S.NOT_CHARGED}),
    S.IN_DOUBT: frozenset({S.PAID, S.NOT_CHARGED, S.REVERSED}),
    **{
        end: frozenset()
        for end in (
            S.CARD_FAILED,
            S.REFUSED,
            S.ABORTED,
            S.ABANDONED,
            S.PAID,
            S.DECLINED,
            S.REVERSED,
            S.NOT_CHARGED,
            S.FAILED,
        )
    },
}

FINAL: frozenset[AttemptState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
BEFORE_AUTHORISATION: frozenset[AttemptState] = frozenset({S.STARTED, S.CARD_READ})
RESULT_UNKNOWN: frozenset[AttemptState] = frozenset({S.AUTHORISING, S.RESULT_PERSISTED, S.IN_DOUBT})
"""In flight: the terminal may have booked it. Such an attempt blocks its protocol until settled."""
SETTLED: frozenset[AttemptState] = frozenset({S.PAID, S.NOT_CHARGED, S.REVERSED})
SYNCED: frozenset[AttemptState] = FINAL | {S.IN_DOUBT}
"""States a supervisor sees: the attempt is synced (record ``payment_attempt``) each time it reaches one."""

WORDS: dict[AttemptState, str] = {
    S.STARTED: "payment attempt opened",
    S.CARD_READ: "card read",
    S.CARD_FAILED: "card not read",
    S.REFUSED: "card refused by the own-card check; card released",
    S.ABORTED: "aborted on the terminal; nothing charged",
    S.ABANDONED: "abandoned before the authorisation; nothing charged",
    S.AUTHORISING: "authorising",
    S.RESULT_PERSISTED: "approved by the terminal; result saved",
    S.IN_DOUBT: "in doubt: not known whether the card was charged",
    S.PAID: "payment recorded",
    S.DECLINED: "declined",
    S.REVERSED: "reversed: not charged",
    S.NOT_CHARGED: "not charged",
    S.FAILED: "failed before any charge",
}
assert set(TRANSITIONS) == set(AttemptState) == set(WORDS)


class IllegalTransition(ValueError):
    """A state change the table does not allow."""

    def __init__(self, attempt_id: str, before: AttemptState, after: AttemptState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[before])) or "none, it is an end state"
        super().__init__(
            f"payment attempt {attempt_id}: no transition from {before.value} to {after.value} "
            f"(allowed from {before.value}: {allowed})"
        )
        self.attempt_id = attempt_id
        self.before = before
        self.after = after


def check_transition(attempt_id: str, before: AttemptState | str, after: AttemptState) -> AttemptState:
    """``before`` as a state, if ``before → after`` is in the table; else ``IllegalTransition``."""
    current = AttemptState(before)
    if after not in TRANSITIONS[current]:
        raise IllegalTransition(attempt_id, current, after)
    return current
