"""What the ingest stores is bounded by the columns that hold it, read from their types, and a refused message
is kept aside within bounds too: every field of every record type has a column (or is declared not stored), a
value one past a column's limit is refused naming the field, and a dead letter keeps 64 KiB of a 20 MiB
message with its size and SHA-256, whatever its topic holds."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, SmallInteger, String, Table, Text, select
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import provision

from core.sync.control import up_topic
from core.sync.envelope import encode_batch_message, make_payload
from core.sync.records import RECORD_MODELS, parse_body
from server.db.column_bounds import table_bounds, too_big
from server.db.sync import SyncDeadLetter, SyncInbox
from server.ingest.limits import body_checks, body_problem
from server.ingest.pipeline import DEAD_LETTER_KEPT_BYTES, Incoming, ingest_batch
from server.ingest.record_types import RECORD_TYPES
from server.ingest.registry import DeviceRegistry

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_bounds_are_read_from_the_column_types() -> None:
    table = Table("t", MetaData(), Column("s", String(10)), Column("i", Integer), Column("b", BigInteger),
                  Column("h", SmallInteger), Column("x", Text))  # fmt: skip
    bounds = table_bounds(table)
    assert set(bounds) == {"s", "i", "b", "h"}  # TEXT has no bound
    assert too_big(bounds["s"], "x" * 10) is None and "11 characters" in str(too_big(bounds["s"], "x" * 11))
    assert too_big(bounds["i"], 2**31 - 1) is None and too_big(bounds["i"], 2**31) is not None
    assert too_big(bounds["i"], -(2**31)) is None and too_big(bounds["i"], -(2**31) - 1) is not None
    assert too_big(bounds["b"], 2**63 - 1) is None and too_big(bounds["b"], 2**63) is not None
    assert too_big(bounds["h"], 2**15) is not None


@pytest.mark.parametrize(("record_type", "version"), sorted(RECORD_MODELS))
def test_every_field_of_every_record_type_has_its_column(record_type: str, version: int) -> None:
    """A new record type or version needs its entry in the table of record types (else it is refused whole);
    a field with no place there fails the table's import."""
    kind = RECORD_TYPES.get((record_type, version))
    assert kind is not None, f"{record_type} v{version}: add it to server.ingest.record_types.RECORD_TYPES"
    assert kind.model is RECORD_MODELS[(record_type, version)]
    assert body_checks(kind) is not None


def test_a_value_one_past_its_column_is_refused_naming_the_field_and_one_within_is_not() -> None:
    body = RECORD_MODELS[("protocol", 1)].model_fields  # every int column of a protocol is INTEGER
    assert "fine_units" in body
    sample = {
        "number": "KZ-1", "jurisdiction": "KZ", "article": "610-1", "offence_at": T0, "offence_date": "2026-03-02",
        "driver_name": "X", "driver_iin": "900101300123", "vehicle_plate": "1", "officer_badge": "B-17",
        "currency": "KZT", "fine_units": 2**31 - 1, "unit_value_minor": 1, "unit_year": 2026, "full_minor": 1,
        "reduced_minor": 1, "discount_deadline": "2026-03-09", "dataset_version": "t@1", "status": "open",
        "created_at": T0,
    }  # fmt: skip
    assert body_problem("protocol", parse_body("protocol", 1, sample)) is None
    why = body_problem("protocol", parse_body("protocol", 1, {**sample, "fine_units": 2**31}))
    assert why is not None and why.startswith("fine_units (protocol.fine_units): 2147483648 is outside")
    check = {
        "check_id": "c" * 65,
        "protocol_number": "KZ-1",
        "driver_name": "X",
        "result": "MATCH",
        "checked_at": T0,
    }
    why = body_problem("own_card_check", parse_body("own_card_check", 1, check))
    assert why is not None and "check_id (sync_own_card_check.check_id): 65 characters" in why


def test_a_dead_letter_keeps_64_kib_of_a_20_mib_message_with_its_size_and_sha256(
    server_sessions: sessionmaker[Session],
) -> None:
    huge = bytes(range(256)) * (20 * 4096)  # 20 MiB
    weird_topics = [
        up_topic("D" * 65, "protocol"),
        "pd/v1/DEV\x00NUL/up/x",
        "pd/v1/\ud800/up/x",
        "x" * 70_000,
    ]
    messages = [Incoming(up_topic("PD-X", "protocol"), huge)] + [Incoming(t, b"{}") for t in weird_topics]
    with server_sessions() as session, session.begin():
        out = ingest_batch(session, messages, DeviceRegistry(server_sessions), T0)
    assert out.dead_letters == len(messages)
    with server_sessions() as session:
        rows = session.execute(
            select(SyncDeadLetter.reason, SyncDeadLetter.data, SyncDeadLetter.size_bytes, SyncDeadLetter.sha256,
                   SyncDeadLetter.device_id, SyncDeadLetter.topic).order_by(SyncDeadLetter.id)
        ).all()  # fmt: skip
    reason, kept, size, digest, device, _topic = rows[0]
    assert (reason, len(kept), size, digest, device) == (
        "oversized", DEAD_LETTER_KEPT_BYTES, len(huge), hashlib.sha256(huge).hexdigest(), "PD-X",
    )  # fmt: skip
    assert bytes(kept) == huge[:DEAD_LETTER_KEPT_BYTES]
    assert [(r[0], r[4]) for r in rows[1:]] == [("bad_topic", None)] * len(weird_topics)
    assert all(len(r[5]) <= 256 and "\x00" not in r[5] for r in rows)


def test_records_within_every_limit_are_stored_exactly_as_signed(
    server_sessions: sessionmaker[Session],
) -> None:
    """The limits refuse nothing a real device makes: a 64-character epoch, the largest seq a BIGINT holds."""
    dev, signer = provision(server_sessions)
    body = {"bookmark_id": str(uuid.uuid4()), "started_at": T0.isoformat(), "ended_at": None, "label": "x" * 200,
            "protocol_number": "N" * 32, "officer_badge": "B" * 32}  # fmt: skip
    payload = make_payload(dev=dev.device_id, epoch="e" * 64, seq=2**63 - 1, record_id="r" * 64,
                           stream="bookmark", sv=2, ts=T0, prev="", refs={}, body=body)  # fmt: skip
    with server_sessions() as session, session.begin():
        out = ingest_batch(session, [Incoming(up_topic(dev.device_id, "bookmark"),
                                              encode_batch_message(signer, [payload]))],
                           DeviceRegistry(server_sessions), T0)  # fmt: skip
    assert (out.accepted, out.dead_letters) == (1, 0)
    with server_sessions() as session:
        assert session.scalar(select(SyncInbox.payload).where(SyncInbox.seq == 2**63 - 1)) == payload
