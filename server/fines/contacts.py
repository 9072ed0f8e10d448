"""Where a notice's phone number comes from when the protocol has none: a contact registry (in Kazakhstan the
BMG database). ``ContactRegistry`` is the interface; ``ImportedContacts``, the embedded default, reads the
``contact_phone`` table that ``patrol-server fines contacts import FILE.csv`` fills.

The CSV has a header ``person_id,phone``; a phone is 7 to 15 digits with an optional leading ``+`` (spaces,
dashes and brackets are dropped). A bad line refuses the whole file, naming the line, and stores nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from server.db.fine_notices import ContactPhone
from server.fines.csv_files import csv_lines

PHONE = re.compile(r"^\+?[0-9]{7,15}$")
PERSON_ID = re.compile(r"^[0-9]{9,16}$")
MAX_CONTACT_FILE_BYTES = 256 * 1024 * 1024


class ContactError(ValueError):
    """A contact file or phone number that cannot be taken; the message names the line and field."""


class ContactRegistry(Protocol):
    def phones(self, session: Session, person_ids: Collection[str]) -> dict[str, str]:
        """Phone numbers of those of ``person_ids`` the registry knows."""
        ...


def normalise_phone(raw: str) -> str:
    """``+7 (701) 123-45-67`` → ``+77011234567``; ``ContactError`` when it is not a phone number."""
    phone = re.sub(r"[\s\-().]", "", raw)
    if not PHONE.match(phone):
        raise ContactError(f"phone {raw!r}: expected 7-15 digits, optionally after '+'")
    return phone


class ImportedContacts:
    """The embedded registry: the ``contact_phone`` table."""

    def phones(self, session: Session, person_ids: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(person_ids))
        found: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            rows = session.execute(
                select(ContactPhone.person_id, ContactPhone.phone).where(
                    ContactPhone.person_id.in_(wanted[i : i + 500])
                )
            )
            found.update((person, phone) for person, phone in rows)
        return found


def parse_contacts(data: bytes) -> list[tuple[str, str]]:
    """The (person id, phone) pairs of a contacts CSV; ``ContactError`` naming the first bad line."""
    out: list[tuple[str, str]] = []
    for line, (person, phone) in csv_lines(
        data, ("person_id", "phone"), ContactError, "contacts file", MAX_CONTACT_FILE_BYTES
    ):
        if not PERSON_ID.match(person):
            raise ContactError(f"line {line}: person_id {person[:40]!r} is not 9-16 digits")
        try:
            out.append((person, normalise_phone(phone)))
        except ContactError as exc:
            raise ContactError(f"line {line}: {exc}") from None
    return out


def store_contacts(session: Session, pairs: Iterable[tuple[str, str]], source: str, now: datetime) -> int:
    """Insert or replace the phones; returns how many lines were stored."""
    rows = {p: {"person_id": p, "phone": ph, "source": source[:64], "updated_at": now} for p, ph in pairs}
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = list(rows.values())
    for i in range(0, len(values), 1000):
        stmt = insert(ContactPhone).values(values[i : i + 1000])
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["person_id"],
                set_={
                    "phone": stmt.excluded.phone,
                    "source": stmt.excluded.source,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
    return len(values)
