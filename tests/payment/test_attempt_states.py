"""The payment attempt's state table: only its transitions are possible, each refusal names both states,
every state is reachable from the start, and every attempt that may have charged a card can be settled."""

from __future__ import annotations

import pytest

from edge.payment.attempt_states import (
    FINAL,
    RESULT_UNKNOWN,
    SETTLED,
    SYNCED,
    TRANSITIONS,
    AttemptState,
    IllegalTransition,
    check_transition,
)

S = AttemptState


def test_every_state_is_reachable_from_started() -> None:
    seen, todo = {S.STARTED}, [S.STARTED]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(AttemptState)


def test_no_money_state_is_left_without_a_way_to_settle_it() -> None:
    for state in RESULT_UNKNOWN - {S.IN_DOUBT}:
        assert S.IN_DOUBT in TRANSITIONS[state] and TRANSITIONS[state] >= SETTLED
    assert TRANSITIONS[S.IN_DOUBT] == SETTLED
    assert S.IN_DOUBT in SYNCED and FINAL <= SYNCED


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (S.PAID, S.IN_DOUBT),  # a settled payment never becomes doubtful again
        (S.IN_DOUBT, S.AUTHORISING),  # an attempt in doubt is never charged again
        (S.CARD_READ, S.PAID),  # no payment without an authorisation
        (S.STARTED, S.AUTHORISING),  # no authorisation without a card read
        (S.DECLINED, S.PAID),
        (S.ABANDONED, S.AUTHORISING),  # a process that finds its attempt abandoned cannot go on
    ],
)
def test_a_transition_not_in_the_table_names_both_states(before: AttemptState, after: AttemptState) -> None:
    with pytest.raises(IllegalTransition) as err:
        check_transition("a-1", before, after)
    assert f"from {before.value} to {after.value}" in str(err.value) and "a-1" in str(err.value)
    assert err.value.before is before and err.value.after is after


def test_allowed_transitions_pass_and_end_states_have_none() -> None:
    for before, targets in TRANSITIONS.items():
        for after in targets:
            assert check_transition("a", before.value, after) is before
    for end in FINAL:
        with pytest.raises(IllegalTransition, match="end state"):
            check_transition("a", end, S.PAID)
