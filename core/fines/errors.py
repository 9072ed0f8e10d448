"""Errors raised by the fines rules: each names what was wrong so it can be shown to an officer or logged."""

from __future__ import annotations


class FineError(Exception):
    """Base class of every error raised by ``core.fines``."""


class DatasetError(FineError, ValueError):
    """A jurisdiction or holiday dataset is malformed; the message names the offending key (e.g. ``mrp[2].value_minor``)."""


class UnknownJurisdiction(FineError, LookupError):
    """No packaged dataset exists for the requested jurisdiction code."""


class UnknownArticle(FineError, LookupError):
    """The article code is not in the jurisdiction's catalogue."""

    def __init__(self, code: str, dataset: str) -> None:
        super().__init__(f"article {code!r} is not in dataset {dataset!r}")
        self.code = code
        self.dataset = dataset


class NoMonetarySanction(FineError):
    """The article's sanction is not a fine (e.g. suspension of the driving licence), so no amount exists."""


class NotPayableOnSpot(FineError):
    """The article may not be settled on the spot in the simplified procedure (no reduced fine, no card payment)."""


class MissingRate(FineError, LookupError):
    """The dataset has no fine unit (MRP) for the year the amount must be computed in."""


class CalendarNotCovered(FineError, LookupError):
    """A working-day computation reached a date outside the years the holiday calendar covers."""
