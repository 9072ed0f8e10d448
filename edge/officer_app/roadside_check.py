"""The roadside check: the driver's other unpaid fines, from the ``unpaid_fines`` list the server sends down
(``core.fines.unpaid_list``: per person only the count, the total due and the oldest date). It works offline:
it reads the version the device holds (``edge.sync.datasets``), says which version and how old it is, and
"no list yet" when the device has none. A list is parsed once per version and kept."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.fines.unpaid_list import UnpaidEntry, UnpaidList, UnpaidListError
from core.structured_log import log_event
from core.sync.datasets import parse_manifest
from edge.sync.datasets import DatasetVersion

log = logging.getLogger(__name__)
DATASET = "unpaid_fines"


@dataclass(frozen=True)
class UnpaidCheck:
    """The answer for one person: ``has_list`` False when the device holds no list (or only a broken one)."""

    has_list: bool
    version: int | None = None
    made_at: datetime | None = None  # when the server built this version
    currency: str = ""
    entry: UnpaidEntry | None = None
    problem: str = ""


class RoadsideCheck:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._lock = threading.Lock()
        self._held: tuple[int, UnpaidList | None, datetime | None, str] | None = None

    def _list(self) -> tuple[int, UnpaidList | None, datetime | None, str] | None:
        with self.sessions() as s:
            version = s.scalar(
                select(DatasetVersion.version).where(
                    DatasetVersion.dataset == DATASET, DatasetVersion.active.is_(True)
                )
            )
            if version is None:
                return None
            with self._lock:
                if self._held is not None and self._held[0] == version:
                    return self._held
            row = s.get(DatasetVersion, (DATASET, version))
            assert row is not None
            made_at = parse_manifest(row.manifest).created_at
            try:
                parsed: UnpaidList | None = UnpaidList.parse(row.content)
                problem = ""
            except UnpaidListError as exc:
                log_event(log, "roadside_check.list_unreadable", version=version, error=str(exc))
                parsed, problem = None, str(exc)
        with self._lock:
            self._held = (version, parsed, made_at, problem)
            return self._held

    def lookup(self, person_id: str) -> UnpaidCheck:
        held = self._list()
        if held is None:
            return UnpaidCheck(False)
        version, parsed, made_at, problem = held
        if parsed is None:
            return UnpaidCheck(False, version, made_at, problem=problem)
        return UnpaidCheck(True, version, made_at, parsed.currency, parsed.lookup(person_id))
