"""Mosquitto's ``acl_file`` format, read and enforced the way Mosquitto 2 does, so that the embedded broker
applies the very file production uses (``deploy/mosquitto/patrolkit.acl``, packaged as
``server/patrolkit.acl``).

- ``user <name>`` starts the rules of that user; ``topic [read|write|readwrite|deny] <filter>`` is a rule of
  the current user (before any ``user`` line: of anonymous clients); ``pattern [access] <filter>`` applies to
  every client, with ``%u`` replaced by its username and ``%c`` by its client id. Access defaults to
  ``readwrite``; ``#`` starts a comment line.
- A user's own rules are checked first, then the patterns; in each list ``deny`` rules come first. A topic
  starting with ``$`` matches only a filter starting with ``$``. Patterns never match a client whose username
  or client id holds ``+``, ``#`` or ``/``.
- ``may(…, "write", topic)`` decides a PUBLISH, ``may(…, "read", topic)`` each delivery (retained messages
  included). Mosquitto 2.0 grants every subscription and filters at delivery; here a filter that could never
  deliver anything to the client is refused at once (``may_subscribe``), the rest filtered at delivery the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Access = Literal["read", "write"]
_ACCESS = {"read": {"read"}, "write": {"write"}, "readwrite": {"read", "write"}, "deny": set()}
PACKAGED_ACL = Path(__file__).resolve().parent / "patrolkit.acl"


class AclFileError(ValueError):
    """A line of an ACL file that Mosquitto would refuse too; names the line."""


@dataclass(frozen=True, slots=True)
class Rule:
    filter: str
    access: frozenset[str]  # empty: deny

    @property
    def deny(self) -> bool:
        return not self.access


@dataclass(frozen=True)
class Acl:
    """The rules of one ACL file."""

    users: dict[str | None, tuple[Rule, ...]] = field(default_factory=dict)  # None: anonymous clients
    patterns: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Acl:
        users: dict[str | None, list[Rule]] = {}
        patterns: list[Rule] = []
        user: str | None = None
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            rest = rest.strip()
            if keyword == "user":
                if not rest:
                    raise AclFileError(f"line {n}: 'user' without a name")
                user = rest
                users.setdefault(user, [])
                continue
            if keyword not in ("topic", "pattern"):
                raise AclFileError(f"line {n}: unknown keyword {keyword!r}")
            access_word, _, topic = rest.partition(" ")
            if not topic.strip():
                access_word, topic = "readwrite", access_word
            if access_word not in _ACCESS:
                raise AclFileError(f"line {n}: access {access_word!r} is not read, write, readwrite or deny")
            topic = topic.strip()
            if not topic or not valid_filter(topic):
                raise AclFileError(f"line {n}: {topic!r} is not a valid topic filter")
            rule = Rule(topic, frozenset(_ACCESS[access_word]))
            if keyword == "pattern":
                patterns.append(rule)
            else:
                users.setdefault(user, []).append(rule)
        return cls(
            {u: _deny_first(rules) for u, rules in users.items()},
            _deny_first(patterns),
        )

    @classmethod
    def load(cls, path: Path = PACKAGED_ACL) -> Acl:
        return cls.parse(path.read_text(encoding="utf-8"))

    @property
    def named_users(self) -> frozenset[str]:
        """The users with rules of their own (services such as ``ingest-svc``), as opposed to devices."""
        return frozenset(u for u in self.users if u is not None)

    def may(self, username: str | None, client_id: str, access: Access, topic: str) -> bool:
        """Whether the client may ``access`` (read: receive, write: publish) ``topic``: the first rule that
        matches decides, the user's own before the patterns."""
        for rules in self._stages(username, client_id):
            for rule in rules:
                if topic_matches(rule, topic):
                    return access in rule.access
        return False

    def may_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        """Whether ``topic_filter`` can deliver anything to the client: some topic it matches is readable
        (a ``read`` rule overlaps it) and a ``deny`` rule does not cover it whole (the user's own rules
        before the patterns). What it may not read is still withheld at each delivery (``may``)."""
        for rules in self._stages(username, client_id):
            for rule in rules:
                if rule.deny and filter_covers(rule.filter, topic_filter):
                    return False
                if "read" in rule.access and filters_overlap(rule.filter, topic_filter):
                    return True
        return False

    def _stages(self, username: str | None, client_id: str) -> tuple[tuple[Rule, ...], ...]:
        own = self.users.get(username, ())
        if not (_safe_in_pattern(username) and _safe_in_pattern(client_id)):
            return (own,)
        return own, _substituted(self.patterns, username, client_id)


def _deny_first(rules: list[Rule]) -> tuple[Rule, ...]:
    return tuple(sorted(rules, key=lambda r: not r.deny))


def _safe_in_pattern(name: str | None) -> bool:
    return name is None or not any(c in name for c in "+#/")


@functools.lru_cache(maxsize=4096)
def _substituted(patterns: tuple[Rule, ...], username: str | None, client_id: str) -> tuple[Rule, ...]:
    out = []
    for rule in patterns:
        if "%u" in rule.filter and username is None:
            continue
        topic = rule.filter.replace("%u", username or "").replace("%c", client_id)
        out.append(Rule(topic, rule.access))
    return _deny_first(out)


def valid_filter(topic_filter: str) -> bool:
    """An MQTT topic filter: ``#`` only as the whole last level, ``+`` only as a whole level."""
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(rule: Rule, topic: str) -> bool:
    """Whether ``topic`` (no wildcards) matches the rule's filter."""
    if topic.startswith("$") != rule.filter.startswith("$"):
        return False
    return filter_covers(rule.filter, topic)


def filter_covers(outer: str, inner: str) -> bool:
    """Whether every topic that ``inner`` (a topic or a filter) matches is matched by ``outer``."""
    if inner.startswith("$") and not outer.startswith("$"):
        return False
    a, b = outer.split("/"), inner.split("/")
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(b):
            return False
        if b[i] == "#":
            return False
        if level == "+":
            continue
        if b[i] != level:  # a literal covers only itself (not "+")
            return False
    return len(a) == len(b)


def filters_overlap(one: str, other: str) -> bool:
    """Whether some topic matches both filters."""
    a, b = one.split("/"), other.split("/")
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True
