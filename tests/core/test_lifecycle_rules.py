"""Lifecycle rules files: the packaged ones load, a new jurisdiction is only a file, and every kind of broken
file is refused at load with the bad key named."""

from __future__ import annotations

import re

import pytest

from core.fines import DatasetError
from core.fines.datasets import (
    _read_packaged,
    available_jurisdictions,
    check_lifecycle,
    load_lifecycle,
    parse_lifecycle,
)
from core.fines.fine_state import FineState
from core.fines.lifecycle_rules import Action

MINIMAL = """
dataset = "lifecycle-xx"
version = 2
jurisdiction = "XX"
timezone = "Europe/Berlin"
languages = ["en"]
verified = false
appeal_forfeits_discount = false
delivery_state = "due"

[[step]]
name = "reminder"
anchor = "issued"
after_days = 3
count = "working"
when = ["unpaid"]
state = "due"
actions = ["sms"]
template = "remind"
pay_within_days = 7

[[step]]
name = "chase"
anchor = "reminder.deadline"
after_days = 1
when = ["unpaid"]
state = "handed_over"
actions = ["handover"]

[templates.remind]
en = "Fine {number}: pay {amount} by {pay_by}."
"""


def refused(text: str) -> str:
    with pytest.raises(DatasetError) as info:
        parse_lifecycle(text, "xx_lifecycle.toml")
    return str(info.value)


def test_a_new_jurisdiction_is_only_a_lifecycle_file() -> None:
    rules = parse_lifecycle(MINIMAL, "xx_lifecycle.toml")
    assert rules.label == "lifecycle-xx@2"
    assert [s.name for s in rules.steps] == ["reminder", "chase"]
    assert rules.uses_working_days


def test_packaged_rules_load_for_both_jurisdictions() -> None:
    kz, ge = load_lifecycle("kz"), load_lifecycle("KZ".lower().replace("kz", "ge"))
    assert kz.label == "lifecycle-kz@1" and kz.languages == ("kk", "ru")
    assert ge.label == "lifecycle-ge@1" and ge.languages == ("ka",)
    assert kz.step("demand").pay_within_days == 5 and kz.step("demand").after_days == 50
    assert kz.step("handover").state is FineState.HANDED_OVER
    assert Action.PUBLISH in ge.step("publish").actions and ge.step("deemed_delivery").after_days == 30
    assert ge.step("time_bar").after_days == 365 and ge.surcharge is not None


def test_lifecycle_files_are_not_taken_for_jurisdictions() -> None:
    assert available_jurisdictions() == ["ge", "kz"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("after_days = 3", "after_days = -1"), r"step\[0\] \(reminder\)\.after_days"),
        (('count = "working"', 'count = "weekly"'), r"step\[0\] \(reminder\)\.count"),
        (
            ('when = ["unpaid"]\nstate = "due"', 'when = ["unpaid", "paid"]\nstate = "due"'),
            r"step\[0\].*'paid' and 'unpaid'",
        ),
        (
            ('when = ["unpaid"]\nstate = "due"', 'when = []\nstate = "due"'),
            r"step\[0\].*say 'paid' or 'unpaid'",
        ),
        (
            ('state = "due"\nactions', 'state = "paid"\nactions'),
            r"step\[0\].*only a payment makes a fine paid",
        ),
        (('state = "due"\nactions', 'state = "sleeping"\nactions'), r"step\[0\] \(reminder\)\.state"),
        (('actions = ["sms"]', 'actions = ["sms", "fax"]'), r"step\[0\] \(reminder\)\.actions\[1\]"),
        (
            ('template = "remind"', 'template = "nope"'),
            r"step\[0\] \(reminder\)\.template: no \[templates\.nope\]",
        ),
        (('anchor = "reminder.deadline"', 'anchor = "reminder.delivered"'), r"step\[1\] \(chase\)\.anchor"),
        (
            ('anchor = "issued"', 'anchor = "reminder"'),
            r"step\[0\] \(reminder\)\.anchor: a step cannot be anchored on itself",
        ),
        (('name = "chase"', 'name = "reminder"'), r"step\[1\] \(reminder\)\.name: listed twice"),
        (('name = "chase"', 'name = "paid"'), r"step\[1\].*'paid' is reserved"),
        (('name = "chase"', 'name = "Chase!"'), r"step\[1\].*name"),
        (("pay_within_days = 7", ""), r"templates\.remind\.en: uses \{pay_by\}"),
        (("{amount}", "{amout}"), r"templates\.remind\.en: unknown placeholder \{amout\}"),
        (('en = "Fine', 'de = "Fine'), r"templates\.remind\.en: missing"),
        (('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"'), r"timezone.*Mars/Olympus"),
        (('languages = ["en"]', 'languages = ["english"]'), r"languages"),
        (('delivery_state = "due"', 'delivery_state = "paid_reduced"'), r"delivery_state"),
        (("version = 2", 'version = "2"'), r"version"),
        (("verified = false", 'verified = false\ncolour = "red"'), r"colour"),
        (
            ('actions = ["handover"]', 'actions = ["handover", "surcharge"]'),
            r"surcharge: a step adds a surcharge",
        ),
        (('actions = ["handover"]', 'actions = ["postal_notice"]'), r"step\[1\].*outcome_wait_days"),
        (("requires = []", ""), None),
    ],
)
def test_a_broken_file_is_refused_naming_the_bad_key(change: tuple[str, str], named: str | None) -> None:
    old, new = change
    if named is None:  # a harmless edit: still loads
        parse_lifecycle(MINIMAL.replace(old, new), "x")
        return
    assert old in MINIMAL
    message = refused(MINIMAL.replace(old, new, 1))
    assert message.startswith("xx_lifecycle.toml: invalid dataset")
    assert re.search(named, message), message


def test_a_requirement_must_name_a_step() -> None:
    text = MINIMAL.replace('actions = ["handover"]', 'actions = ["handover"]\nrequires = ["remindr"]')
    assert "step[1] (chase).requires: no step named 'remindr'" in refused(text)


def test_not_toml_is_refused_with_the_file_named() -> None:
    assert refused("step = [").startswith("xx_lifecycle.toml: not valid TOML")


def test_a_file_for_another_jurisdiction_or_without_a_calendar_is_refused() -> None:
    rules = parse_lifecycle(MINIMAL, "xx_lifecycle.toml")
    with pytest.raises(DatasetError, match="file is for YY but says 'XX'"):
        check_lifecycle(rules, "yy", "yy_lifecycle.toml")
    with pytest.raises(DatasetError, match=r"working days need xx_holidays\.toml"):
        check_lifecycle(rules, "xx", "xx_lifecycle.toml")


def test_the_packaged_files_carry_a_source_for_every_unverified_figure() -> None:
    for code in ("kz", "ge"):
        text = _read_packaged(f"{code}_lifecycle") or ""
        assert "unverified" in text.lower()
        assert "verified = false" in text
