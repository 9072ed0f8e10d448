"""A jurisdiction's fine lifecycle as validated data: the steps a fine goes through after the stop.

The schema of ``core/fines/data/<code>_lifecycle.toml``. Each ``[[step]]`` has

- a trigger: ``anchor`` (a date the fine knows) plus ``after_days`` counted in ``count`` = calendar or working
  days (working days use the jurisdiction's holiday calendar);
- conditions: ``when`` (``paid`` / ``unpaid``, ``appealed`` / ``not_appealed``, ``delivered`` /
  ``not_delivered``) and ``requires`` (steps that must have happened);
- what it does: ``state`` (the fine's new state, checked against ``core.fines.fine_state.TRANSITIONS``) and
  ``actions`` (``sms``, ``postal_notice``, ``publish``, ``handover``, ``recall``, ``surcharge``,
  ``deem_delivered``, ``close``).

Anchors are the fine's own dates (``issued``, ``discount_deadline``), dates set by events (``paid``,
``delivered``, ``surcharged``) and dates set by steps: ``<step>`` (the day it happened), ``<step>.deadline``
(the pay-by date it announced, with ``pay_within_days``) and, for a postal notice, ``<step>.delivered`` or
``<step>.undelivered``. Unknown keys are refused and every cross-reference is checked at load, with messages
that name the key: ``step[3] (handover).anchor: ...``.

SMS texts are templates per language (``[templates.<name>] kk = "…"``); the placeholders a template may use are
``TEMPLATE_FIELDS``. An SMS joins the languages of ``languages`` in that order.
"""

from __future__ import annotations

import enum
import re
import string
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from core.fines.fine_state import PAYMENT_ONLY, FineState
from core.fines.jurisdiction import DayCount

NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=3660)]
STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
LANGUAGE = re.compile(r"^[a-z]{2}$")
TEMPLATE_FIELDS = frozenset(
    {"number", "plate", "amount", "full_amount", "reduced_amount", "discount_until", "pay_by", "surcharge"}
)


class Action(enum.StrEnum):
    SMS = "sms"  # notify the driver by SMS (``template``)
    POSTAL_NOTICE = "postal_notice"  # send a notice by post; its outcome comes back by API or file
    PUBLISH = "publish"  # put the fine on the publication list
    HANDOVER = "handover"  # an enforcement document to the bailiff / enforcement bureau
    RECALL = "recall"  # tell the bailiff the fine was paid after the hand-over
    SURCHARGE = "surcharge"  # add the configured surcharge to what is due
    DEEM_DELIVERED = "deem_delivered"  # delivery is deemed to have happened on this day
    CLOSE = "close"  # nothing more will happen (the state says why)


OUTBOUND = frozenset({Action.SMS, Action.POSTAL_NOTICE, Action.PUBLISH, Action.HANDOVER, Action.RECALL})


class Condition(enum.StrEnum):
    PAID = "paid"
    UNPAID = "unpaid"
    APPEALED = "appealed"  # only while an appeal or complaint is open (such a step is not paused)
    NOT_APPEALED = "not_appealed"
    DELIVERED = "delivered"
    NOT_DELIVERED = "not_delivered"


_OPPOSITES = (
    (Condition.PAID, Condition.UNPAID),
    (Condition.APPEALED, Condition.NOT_APPEALED),
    (Condition.DELIVERED, Condition.NOT_DELIVERED),
)

BASE_ANCHORS = frozenset({"issued", "discount_deadline"})
EVENT_ANCHORS = frozenset({"paid", "delivered", "surcharged"})
RESERVED_NAMES = BASE_ANCHORS | EVENT_ANCHORS


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    anchor: StrictStr
    after_days: NonNegativeInt
    count: DayCount = DayCount.CALENDAR
    when: tuple[Condition, ...]
    requires: tuple[StrictStr, ...] = ()
    state: FineState | None = None
    actions: tuple[Action, ...] = ()
    template: StrictStr | None = None
    pay_within_days: NonNegativeInt | None = (
        None  # calendar days from this step to the pay-by date it announces
    )
    outcome_wait_days: NonNegativeInt | None = (
        None  # a postal notice with no outcome by then counts as undelivered
    )
    source: StrictStr = ""
    note: StrictStr = ""

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not STEP_NAME.match(v):
            raise ValueError("must be 1-32 characters: a lower-case letter, then letters, digits or '_'")
        if v in RESERVED_NAMES:
            raise ValueError(f"{v!r} is reserved for a date the fine knows")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        when = set(self.when)
        for a, b in _OPPOSITES:
            if a in when and b in when:
                raise ValueError(f"when: {a.value!r} and {b.value!r} exclude each other")
        if Condition.PAID not in when and Condition.UNPAID not in when:
            raise ValueError("when: say 'paid' or 'unpaid'")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError("actions: an action is listed twice")
        if self.state in PAYMENT_ONLY:
            raise ValueError(f"state: only a payment makes a fine {self.state.value}")
        if self.state is None and not self.actions:
            raise ValueError("a step must set a state or take an action")
        sms = Action.SMS in self.actions
        if sms and self.template is None:
            raise ValueError("template: an 'sms' step needs a template")
        if not sms and self.template is not None:
            raise ValueError("template: only an 'sms' step has a template")
        notice = Action.POSTAL_NOTICE in self.actions
        if notice and self.outcome_wait_days is None:
            raise ValueError(
                "outcome_wait_days: a 'postal_notice' step must say how long to wait for its outcome"
            )
        if not notice and self.outcome_wait_days is not None:
            raise ValueError("outcome_wait_days: only a 'postal_notice' step waits for an outcome")
        if self.pay_within_days is not None and not (OUTBOUND & set(self.actions)):
            raise ValueError("pay_within_days: only a step that tells someone can announce a pay-by date")
        return self

    @property
    def outbound(self) -> bool:
        """A step that tells someone is dated the day it is taken; others the day they were due."""
        return bool(OUTBOUND & set(self.actions))


class Surcharge(BaseModel):
    """What the ``surcharge`` action adds: ``percent`` of the full fine plus ``fixed_minor``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: Annotated[StrictInt, Field(ge=0, le=1000)] = 0
    fixed_minor: Annotated[StrictInt, Field(ge=0)] = 0
    verified: StrictBool = False
    source: StrictStr = ""


class LifecycleRules(BaseModel):
    """A validated lifecycle dataset (``dataset``@``version``) for one jurisdiction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: StrictStr
    version: Annotated[StrictInt, Field(gt=0)]
    jurisdiction: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")]
    timezone: StrictStr
    languages: tuple[StrictStr, ...] = Field(min_length=1)
    verified: StrictBool
    note: StrictStr = ""
    appeal_forfeits_discount: StrictBool  # an appeal, once opened, takes the reduced amount away
    delivery_state: FineState  # the state a postal notice's delivery puts the fine in
    surcharge: Surcharge | None = None
    steps: tuple[Step, ...] = Field(alias="step", min_length=1)
    templates: dict[StrictStr, dict[StrictStr, StrictStr]] = Field(default_factory=dict)

    _by_name: dict[str, Step] = PrivateAttr(default_factory=dict)

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for lang in v:
            if not LANGUAGE.match(lang):
                raise ValueError(f"{lang!r} is not a two-letter language code")
        if len(set(v)) != len(v):
            raise ValueError("a language is listed twice")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _references(self) -> LifecycleRules:
        names: dict[str, Step] = {}
        for i, step in enumerate(self.steps):
            if step.name in names:
                raise ValueError(f"step[{i}] ({step.name}).name: listed twice")
            names[step.name] = step
        anchors = set(BASE_ANCHORS | EVENT_ANCHORS)
        for step in self.steps:
            anchors.add(step.name)
            if step.pay_within_days is not None:
                anchors.add(f"{step.name}.deadline")
            if Action.POSTAL_NOTICE in step.actions:
                anchors |= {f"{step.name}.delivered", f"{step.name}.undelivered"}
        surcharged = any(Action.SURCHARGE in s.actions for s in self.steps)
        for i, step in enumerate(self.steps):
            where = f"step[{i}] ({step.name})"
            if step.anchor not in anchors:
                raise ValueError(f"{where}.anchor: {step.anchor!r} is not a date this file defines")
            if step.anchor.split(".")[0] == step.name:
                raise ValueError(f"{where}.anchor: a step cannot be anchored on itself")
            for req in step.requires:
                if req not in names:
                    raise ValueError(f"{where}.requires: no step named {req!r}")
            if step.template is not None:
                texts = self.templates.get(step.template)
                if texts is None:
                    raise ValueError(f"{where}.template: no [templates.{step.template}]")
                for lang in self.languages:
                    if lang not in texts:
                        raise ValueError(f"templates.{step.template}.{lang}: missing ({where} sends it)")
                    if step.pay_within_days is None and "{pay_by}" in texts[lang]:
                        raise ValueError(
                            f"templates.{step.template}.{lang}: uses {{pay_by}} but {where} has no pay_within_days"
                        )
            if step.state is not None and step.state is FineState.ISSUED:
                raise ValueError(f"{where}.state: a step cannot make a fine issued again")
        if surcharged and self.surcharge is None:
            raise ValueError("surcharge: a step adds a surcharge but no [surcharge] says how much")
        if self.delivery_state in PAYMENT_ONLY:
            raise ValueError(f"delivery_state: only a payment makes a fine {self.delivery_state.value}")
        formatter = string.Formatter()
        for name, texts in self.templates.items():
            for lang, text in texts.items():
                where = f"templates.{name}.{lang}"
                if lang not in self.languages:
                    raise ValueError(f"{where}: {lang!r} is not in languages {list(self.languages)}")
                try:
                    fields = [f for _, f, spec, conv in formatter.parse(text) if f is not None]
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
                for field in fields:
                    if field not in TEMPLATE_FIELDS:
                        known = ", ".join(sorted(TEMPLATE_FIELDS))
                        raise ValueError(f"{where}: unknown placeholder {{{field}}} (known: {known})")
        return self

    def model_post_init(self, _context: object) -> None:
        self._by_name = {s.name: s for s in self.steps}

    @property
    def label(self) -> str:
        """``dataset@version``: what every fine issued under these rules keeps."""
        return f"{self.dataset}@{self.version}"

    def step(self, name: str) -> Step:
        found = self._by_name.get(name)
        if found is None:
            raise KeyError(f"{self.label} has no step {name!r}")
        return found

    @property
    def uses_working_days(self) -> bool:
        return any(s.count is DayCount.WORKING for s in self.steps)
