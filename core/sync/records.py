"""Versioned record bodies that the device syncs to the server, and the one place that parses them.

Each record type has a name (the envelope's ``stream``) and an integer schema version (the envelope's ``sv``).
``parse_body(record_type, version, body)`` returns the validated pydantic model or raises ``RecordRejected``
naming what was wrong: an unknown type, an unknown version, or a field that does not validate. Bodies never
carry unknown keys (``extra="forbid"``), so a newer body is rejected whole instead of being half-read.

Producers (payments, receipts, camera, device status) build a model and enqueue ``model.to_body()``:

    from core.sync.records import Payment
    enqueue(session, "payment", Payment(...).to_body())

Conventions: ids are device-made UUID strings; protocols are referred to by their (ERAP) number;
money is an integer count of minor units plus an ISO 4217 code; times are aware UTC datetimes (ISO 8601).

Names, one for one thing across the wire contract, the databases and the Python code that read them:

- ``seq`` for a sequence number: a record's place in its device stream (the envelope's ``seq``) and a
  segment's number in the device's recording (``Segment.seq``, the ``seq`` columns of both databases);
- ``started_at`` / ``ended_at`` for a time range (a segment, a recording gap, a bookmark; ``ended_at`` None
  for an instant); ``…_at`` alone for an instant (``checked_at``, ``occurred_at``).

A column that holds a field has the field's name; where the server stores one under another name, the table
of record types (``server.ingest.record_types``) says so, in one place. The signed video manifest
(``core.manifest``) and the recorder's journal are file formats of their own and keep ``start_utc``/``end_utc``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

Id = str  # device-made UUID (text form)


class RecordRejected(ValueError):
    """A record body (or type/version) that the receiver will not accept; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RecordBody(BaseModel):
    """Base of every synced record body: strict keys, immutable, JSON-mode serialisation."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    record_type: ClassVar[str]
    version: ClassVar[int]

    def to_body(self) -> dict[str, Any]:
        """The JSON-ready dict to pass to ``enqueue(session, self.record_type, body)``."""
        return self.model_dump(mode="json", exclude_none=False)


CurrencyCode = Literal["KZT", "GEL", "EUR"]


# --- payments engineer -------------------------------------------------------------------------------------


class ProtocolRecordV1(RecordBody):
    """An administrative-offence report (protocol) as drawn up, or a later change of its status.

    Fields mirror the device's ``protocol`` table (``edge.db.protocols.Protocol``) so the server copy
    (``server.db.protocols.Protocol``) is filled field by field. The number comes from ERAP, verbatim.
    """

    record_type: ClassVar[str] = "protocol"
    version: ClassVar[int] = 1

    number: str = Field(min_length=1, max_length=32)
    jurisdiction: Literal["KZ", "GE"]
    article: str = Field(min_length=1, max_length=32)
    article_title: str = ""
    offence_at: AwareDatetime
    offence_date: date
    place: str = ""
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    driver_name: str = Field(max_length=200)
    driver_iin: str = Field(max_length=12)
    vehicle_plate: str = Field(max_length=16)
    officer_badge: str = Field(min_length=1, max_length=32)
    officer_name: str | None = Field(default=None, max_length=200)
    currency: CurrencyCode
    fine_units: int = Field(ge=0)
    unit_value_minor: int = Field(ge=0)
    unit_year: int = Field(ge=1900, le=2999)
    full_minor: int = Field(ge=0)
    reduced_minor: int = Field(ge=0)
    discount_deadline: date
    legal_basis: str = ""
    dataset_version: str = Field(max_length=64, description="tariff dataset version used")
    status: Literal["open", "paid", "cancelled"]
    created_at: AwareDatetime


class ProtocolRecordV2(ProtocolRecordV1):
    """``ProtocolRecordV1`` plus what the officer app adds at the roadside: the driver's mobile phone for
    notices (E.164, optional) and the driver's agreement to the simplified procedure (when it was given and in
    which language the driver read it; both null until then). Each change is a new record of the protocol.

    A v2 server reads v1 protocols with these fields null; a v1 server refuses v2 with ``unknown_version`` and
    the device keeps the record until the server is upgraded.
    """

    version: ClassVar[int] = 2

    driver_phone: str | None = Field(default=None, pattern=r"^\+[0-9]{7,15}$")
    driver_agreed_at: AwareDatetime | None = None
    driver_agreed_language: Literal["kk", "ru", "en"] | None = None

    @model_validator(mode="after")
    def _agreement_consistent(self) -> ProtocolRecordV2:
        if (self.driver_agreed_at is None) != (self.driver_agreed_language is None):
            raise ValueError("driver_agreed_at and driver_agreed_language are both given or both null")
        return self


class PaymentRecordV1(RecordBody):
    """One approved (or later reversed) card payment of a protocol's reduced fine.

    Fields mirror the device's ``payment`` table (``edge.db.payments.Payment``); masked PAN only.
    """

    record_type: ClassVar[str] = "payment"
    version: ClassVar[int] = 1

    id: Id = Field(min_length=1, max_length=36)
    protocol_number: str = Field(min_length=1, max_length=32)
    amount_minor: int = Field(ge=0)
    currency: CurrencyCode
    full_amount_minor: int = Field(ge=0)
    status: Literal["approved", "reversed"]
    card_scheme: str = Field(default="", max_length=64)
    masked_pan: str = Field(default="", max_length=32)
    card_expiry: str = Field(default="", max_length=4)
    card_hash: str = Field(default="", max_length=64)
    cardholder_name: str | None = Field(default=None, max_length=64)
    name_check: Literal["MATCH", "PROBABLE", "MISMATCH", "UNAVAILABLE"]
    name_check_reason: str = ""
    name_check_attested_by: str | None = Field(default=None, max_length=32)
    auth_code: str = Field(default="", max_length=16)
    trace_no: str = Field(default="", max_length=16)
    receipt_no: str = Field(default="", max_length=16)
    terminal_id: str = Field(default="", max_length=16)
    terminal_time: str = Field(default="", max_length=32)
    officer_badge: str = Field(min_length=1, max_length=32)
    approved_at: AwareDatetime


class OwnCardCheckRecordV1(RecordBody):
    """The check that the card belongs to the driver: card-holder name against the offender's name."""

    record_type: ClassVar[str] = "own_card_check"
    version: ClassVar[int] = 1

    check_id: Id
    protocol_number: str = Field(min_length=1, max_length=32)
    payment_id: Id | None = None
    cardholder_name: str | None = Field(default=None, max_length=64)
    driver_name: str = Field(max_length=200)
    result: Literal["MATCH", "PROBABLE", "MISMATCH", "UNAVAILABLE"]
    reason: str = ""
    attested_by: str | None = Field(default=None, max_length=32, description="officer badge if overridden")
    checked_at: AwareDatetime


AttemptStateName = Literal[
    "started",
    "card_read",
    "card_failed",
    "refused",
    "aborted",
    "abandoned",
    "authorising",
    "result_persisted",
    "in_doubt",
    "paid",
    "declined",
    "reversed",
    "not_charged",
    "failed",
]


class PaymentAttemptRecordV1(RecordBody):
    """One try to pay a protocol, as it stands after a state change that matters to a supervisor: every end
    (paid, declined, reversed, aborted, refused, …) and "in doubt". Later records of the same attempt carry a
    higher ``revision``; the receiver keeps the highest. ``result_text`` is the terminal's result code in
    words, ``reason`` what happened in the device's words."""

    record_type: ClassVar[str] = "payment_attempt"
    version: ClassVar[int] = 1

    attempt_id: Id = Field(min_length=1, max_length=36)
    protocol_number: str = Field(min_length=1, max_length=32)
    state: AttemptStateName
    revision: int = Field(ge=1, le=1_000_000)
    amount_minor: int = Field(ge=0)
    currency: CurrencyCode
    officer_badge: str = Field(min_length=1, max_length=32)
    started_at: AwareDatetime
    updated_at: AwareDatetime
    masked_pan: str = Field(default="", max_length=32)
    card_scheme: str = Field(default="", max_length=64)
    name_check: Literal["MATCH", "PROBABLE", "MISMATCH", "UNAVAILABLE"] | None = None
    result_code: int | None = Field(default=None, ge=0, le=255)
    result_text: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=2000)
    trace_no: int | None = Field(default=None, ge=0, le=999_999)
    receipt_no: int | None = Field(default=None, ge=0, le=9_999)
    payment_id: Id | None = Field(default=None, max_length=36)

    @model_validator(mode="after")
    def _consistent(self) -> PaymentAttemptRecordV1:
        if self.updated_at < self.started_at:
            raise ValueError("updated_at is before started_at")
        if (self.state == "paid") != (self.payment_id is not None):
            raise ValueError("a paid attempt names its payment_id, and only a paid one does")
        return self


class PaymentAttemptRecordV2(PaymentAttemptRecordV1):
    """``PaymentAttemptRecordV1`` plus when its steps happened, so a supervisor sees them on the footage's
    clock: ``card_read_at`` (the terminal read the card) and ``authorising_at`` (the amount went to the
    terminal for authorisation: the driver's PIN entry and the host's answer follow). ``None`` = the attempt
    never got there. A v1 server refuses v2 with ``unknown_version``; the device keeps it until upgraded."""

    version: ClassVar[int] = 2

    card_read_at: AwareDatetime | None = None
    authorising_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _steps_in_order(self) -> PaymentAttemptRecordV2:
        for name in ("card_read_at", "authorising_at"):
            at = getattr(self, name)
            if at is not None and not self.started_at <= at <= self.updated_at:
                raise ValueError(f"{name} is outside started_at..updated_at")
        return self


class PaymentSettlementRecordV1(RecordBody):
    """How an attempt whose result was unknown ("in doubt") was settled, and on what evidence: the terminal's
    last receipt (Repeat Receipt), its end-of-day totals, a result it sent unsolicited and the device saved,
    or, last, a person's decision with a reason. Written once per attempt; never changed."""

    record_type: ClassVar[str] = "payment_settlement"
    version: ClassVar[int] = 1

    settlement_id: Id = Field(min_length=1, max_length=36)
    attempt_id: Id = Field(min_length=1, max_length=36)
    protocol_number: str = Field(min_length=1, max_length=32)
    outcome: Literal["charged", "not_charged"]
    method: Literal["repeat_receipt", "end_of_day", "terminal_result", "decision"]
    evidence: str = Field(min_length=1, max_length=4000)
    evidence_hex: str = Field(default="", max_length=4096, pattern=r"^[0-9a-f]*$")
    decided_by: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=1000)
    amount_minor: int = Field(ge=0)
    currency: CurrencyCode
    payment_id: Id | None = Field(default=None, max_length=36)
    settled_at: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> PaymentSettlementRecordV1:
        if self.method == "decision" and not (self.decided_by and self.reason.strip()):
            raise ValueError("a decision names who decided (decided_by) and why (reason)")
        if (self.outcome == "charged") != (self.payment_id is not None):
            raise ValueError("a charged settlement names its payment_id, and only a charged one does")
        return self


# --- receipts engineer -------------------------------------------------------------------------------------


class ReceiptJobRecordV1(RecordBody):
    """One event in the life of a receipt print job (copy 1 for the driver, copy 2 for the protocol)."""

    record_type: ClassVar[str] = "receipt_job"
    version: ClassVar[int] = 1

    job_id: Id
    protocol_number: str | None = Field(default=None, max_length=32)
    payment_id: Id | None = None
    copy_no: int = Field(ge=1, le=9)
    event: Literal["queued", "printing", "printed", "failed", "reprint_requested", "cancelled"]
    detail: str | None = Field(default=None, max_length=500)
    occurred_at: AwareDatetime


class ReceiptJobRecordV2(ReceiptJobRecordV1):
    """``ReceiptJobRecordV1`` plus what is needed to print the very same receipt again elsewhere (the
    evidence export renders it from the synced rows with the device's layout, ``core.receipt_layout``): the
    duplicate number, the signed verification code of its QR (``core.receipt_code``; printed on paper,
    not a secret), whether the IIN was masked, the time zone and unit printed, and the software version.
    A v1 server refuses v2 with ``unknown_version``; the device keeps it until upgraded."""

    version: ClassVar[int] = 2

    duplicate_no: int = Field(default=0, ge=0, le=999)
    verify_code: str | None = Field(default=None, max_length=400, pattern=r"^[A-Za-z0-9_-]*$")
    mask_iin: bool | None = None
    timezone: str | None = Field(default=None, max_length=64)
    unit: str | None = Field(default=None, max_length=200)
    software_version: str | None = Field(default=None, max_length=64)


# --- camera engineer ---------------------------------------------------------------------------------------


class SegmentRecordV1(RecordBody):
    """Metadata of one finished recording segment; the video itself goes over HTTPS, never MQTT."""

    record_type: ClassVar[str] = "segment"
    version: ClassVar[int] = 1

    segment_id: Id
    recording_id: Id
    seq: int = Field(ge=0, description="the segment's number in the device's recording")
    started_at: AwareDatetime
    ended_at: AwareDatetime
    file_name: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    codec: str = Field(default="h264", max_length=32)
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)
    fps: float | None = Field(default=None, gt=0)
    prev_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="chain of segments")


class SegmentRecordV2(SegmentRecordV1):
    """``SegmentRecordV1`` plus where the segment was recorded: the GPS position at its first and last frame
    (``None`` = no fix at that moment) and how many of its ``gps_seconds`` (started seconds of video) had a
    fix (``None`` for both = not known, e.g. a segment repaired after a crash).

    A v2 server reads v1 segments with every GPS field ``None``; a v1 server refuses v2 with
    ``unknown_version`` and the device keeps the record until the server is upgraded.
    """

    version: ClassVar[int] = 2

    start_lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    start_lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    end_lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    end_lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    gps_fix_seconds: int | None = Field(default=None, ge=0)
    gps_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _gps_consistent(self) -> SegmentRecordV2:
        for name, lat, lon in (
            ("start", self.start_lat, self.start_lon),
            ("end", self.end_lat, self.end_lon),
        ):
            if (lat is None) != (lon is None):
                raise ValueError(f"{name}_lat and {name}_lon must both be given or both be null")
        if (self.gps_fix_seconds is None) != (self.gps_seconds is None):
            raise ValueError("gps_fix_seconds and gps_seconds must both be given or both be null")
        fixed, total = self.gps_fix_seconds, self.gps_seconds
        if fixed is not None and total is not None and fixed > total:
            raise ValueError(f"gps_fix_seconds ({fixed}) exceeds gps_seconds ({total})")
        if self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class RecordingGapRecordV1(RecordBody):
    """A span of the shift with no recording (power loss, crash, camera fault), as found by the recorder."""

    record_type: ClassVar[str] = "recording_gap"
    version: ClassVar[int] = 1

    gap_id: Id
    recording_id: Id | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=200)


class BookmarkRecordV1(RecordBody):
    """A marked instant in the recording, e.g. the start of a traffic stop, linked to its protocol."""

    record_type: ClassVar[str] = "bookmark"
    version: ClassVar[int] = 1

    bookmark_id: Id
    started_at: AwareDatetime
    label: str = Field(max_length=200)
    protocol_number: str | None = Field(default=None, max_length=32)
    officer_badge: str | None = Field(default=None, max_length=32)


class BookmarkRecordV2(RecordBody):
    """A marked span of the recording, ``started_at`` to ``ended_at`` (``None`` = an instant).

    Compatibility rule: a new field is a new version, never an optional field slipped into an old one
    (bodies are ``extra="forbid"``, so an old server would reject it). A v2 server reads v1 bookmarks as
    instants (``ended_at`` = ``None``); a v1 server refuses v2 with ``unknown_version`` and the device keeps the
    record until the server is upgraded.
    """

    record_type: ClassVar[str] = "bookmark"
    version: ClassVar[int] = 2

    bookmark_id: Id
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    label: str = Field(max_length=200)
    protocol_number: str | None = Field(default=None, max_length=32)
    officer_badge: str | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _end_not_before_start(self) -> BookmarkRecordV2:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


# --- sync (this area) --------------------------------------------------------------------------------------


class DeviceStatusRecordV1(RecordBody):
    """Periodic health of the device; the server keeps the latest by (seq, ts)."""

    record_type: ClassVar[str] = "device_status"
    version: ClassVar[int] = 1

    battery_pct: int | None = Field(default=None, ge=0, le=100)
    charging: bool | None = None
    storage_free_bytes: int | None = Field(default=None, ge=0)
    storage_total_bytes: int | None = Field(default=None, ge=0)
    outbox_pending: int = Field(ge=0)
    outbox_oldest_age_s: float | None = Field(default=None, ge=0)
    recorder_state: str | None = Field(default=None, max_length=32)
    app_version: str = Field(max_length=64)
    dataset_versions: dict[str, int] = Field(default_factory=dict)
    measured_at: AwareDatetime


RECORD_MODELS: dict[tuple[str, int], type[RecordBody]] = {
    (m.record_type, m.version): m
    for m in (
        ProtocolRecordV1,
        ProtocolRecordV2,
        PaymentRecordV1,
        OwnCardCheckRecordV1,
        PaymentAttemptRecordV1,
        PaymentAttemptRecordV2,
        PaymentSettlementRecordV1,
        ReceiptJobRecordV1,
        ReceiptJobRecordV2,
        SegmentRecordV1,
        SegmentRecordV2,
        RecordingGapRecordV1,
        BookmarkRecordV1,
        BookmarkRecordV2,
        DeviceStatusRecordV1,
    )
}
RECORD_TYPES: frozenset[str] = frozenset(t for t, _ in RECORD_MODELS)
CURRENT_VERSION: dict[str, int] = {t: max(v for tt, v in RECORD_MODELS if tt == t) for t in RECORD_TYPES}

# Short, readable aliases for producers.
Protocol = ProtocolRecordV2
Payment = PaymentRecordV1
OwnCardCheck = OwnCardCheckRecordV1
PaymentAttemptRecord = PaymentAttemptRecordV1
PaymentSettlementRecord = PaymentSettlementRecordV1
ReceiptJob = ReceiptJobRecordV1
Segment = SegmentRecordV2
RecordingGap = RecordingGapRecordV1
Bookmark = BookmarkRecordV2
DeviceStatus = DeviceStatusRecordV1

# Drain priority: lower goes first (payments and protocols before health).
PRIORITY: dict[str, int] = {
    "payment": 0,
    "protocol": 0,
    "own_card_check": 1,
    "payment_settlement": 0,
    "payment_attempt": 1,
    "receipt_job": 2,
    "bookmark": 3,
    "segment": 4,
    "recording_gap": 4,
    "device_status": 9,
}


def model_for(record_type: str, version: int) -> type[RecordBody]:
    """The model of ``record_type`` at ``version``; ``RecordRejected`` for an unknown type or version."""
    if record_type not in RECORD_TYPES:
        raise RecordRejected("unknown_type", f"record type {record_type!r} not in {sorted(RECORD_TYPES)}")
    model = RECORD_MODELS.get((record_type, version))
    if model is None:
        known = sorted(v for t, v in RECORD_MODELS if t == record_type)
        raise RecordRejected("unknown_version", f"{record_type} version {version!r} unknown; known {known}")
    return model


def parse_body(record_type: str, version: int, body: Any) -> RecordBody:
    """Validate a body fully, or raise ``RecordRejected`` (reason ``invalid_body``) naming the bad fields."""
    return validate_body(model_for(record_type, version), body)


def validate_body(model: type[RecordBody], body: Any) -> RecordBody:
    """``body`` as ``model``, or ``RecordRejected`` (reason ``invalid_body``) naming the bad fields."""
    if not isinstance(body, dict):
        raise RecordRejected("invalid_body", f"{model.record_type} body is a {type(body).__name__}, not an object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise RecordRejected("invalid_body", f"{model.record_type} v{model.version}: {problems}") from None


def validate_for_enqueue(record_type: str, body: dict[str, Any]) -> RecordBody:
    """Check a body on the device before it is written to the outbox (current version of its type)."""
    if record_type not in CURRENT_VERSION:
        raise RecordRejected("unknown_type", f"record type {record_type!r} not in {sorted(RECORD_TYPES)}")
    return parse_body(record_type, CURRENT_VERSION[record_type], body)
