"""The signed envelope, control messages, record bodies and dataset manifests (pure core, no I/O)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.sync.control import (
    Ack,
    AckEntry,
    AckItem,
    Hello,
    ack_body,
    open_signed,
    parse_ack,
    parse_control,
    seal,
)
from core.sync.datasets import RollbackRefused, check_newer, open_dataset, sign_dataset
from core.sync.envelope import (
    BINARY_MAGIC,
    MAX_MESSAGE_BYTES,
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_MESSAGE,
    EnvelopeError,
    SignedBatch,
    decode_up,
    encode_batch_message,
    frame_batch,
    make_payload,
    message_bytes,
    parse_payload,
    plan_messages,
    sha256_hex,
)
from core.sync.records import Payment, RecordRejected, parse_body, validate_for_enqueue
from core.sync.signing import DOMAIN_ACK, DOMAIN_BATCH, BadSignature, KeyRing, Signer, Verifier

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEVICE = Signer.generate()
SERVER = Signer.generate()


def payment_body(amount: int = 1_081_250) -> dict[str, object]:
    return Payment(
        id="9f0c7c6e-0000-4000-8000-000000000001",
        protocol_number="KZ-2026-000001",
        status="approved",
        amount_minor=amount,
        full_amount_minor=amount * 2,
        currency="KZT",
        masked_pan="************1234",
        name_check="MATCH",
        officer_badge="B-17",
        approved_at=T0,
    ).to_body()


def payload(seq: int = 1, body: dict[str, object] | None = None, dev: str = "PD-1") -> bytes:
    return make_payload(
        dev=dev,
        epoch="e1",
        seq=seq,
        record_id=f"id-{seq}",
        stream="payment",
        sv=1,
        ts=T0,
        prev="",
        refs={"tariffs": 3},
        body=body or payment_body(),
    )


def test_signed_records_round_trip_through_a_batched_message() -> None:
    payloads = [payload(seq) for seq in range(1, 6)]
    batch = decode_up(encode_batch_message(DEVICE, payloads))
    assert batch.payloads == payloads
    batch.verify(KeyRing([Verifier(DEVICE.public_raw())]))
    for data in batch.payloads:
        parsed = parse_payload(data)
        assert parsed.dev == "PD-1" and parsed.refs == {"tariffs": 3}
        assert parse_body(parsed.stream, parsed.sv, parsed.body) == Payment.model_validate(payment_body())


def test_tampered_payload_and_forged_signature_do_not_verify() -> None:
    ring = KeyRing([Verifier(DEVICE.public_raw())])
    good = decode_up(encode_batch_message(DEVICE, [payload()]))
    tampered = decode_up(frame_batch(good.kid, good.sig, [good.payloads[0].replace(b"1081250", b"1")]))
    with pytest.raises(BadSignature):
        tampered.verify(ring)
    forger = Signer.generate()
    forged = decode_up(frame_batch(good.kid, forger.sign(DOMAIN_BATCH, good.manifest), good.payloads))
    with pytest.raises(BadSignature):
        forged.verify(ring)
    with pytest.raises(BadSignature, match="unknown key id"):
        decode_up(encode_batch_message(forger, good.payloads)).verify(ring)


def test_signature_for_one_purpose_never_verifies_as_another() -> None:
    data = payload()
    sig = DEVICE.sign(DOMAIN_BATCH, data)
    with pytest.raises(BadSignature):
        Verifier(DEVICE.public_raw()).verify(DOMAIN_ACK, data, sig)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "malformed"),
        (b"[]", "malformed"),
        (b"[" * 100_000, "malformed"),
        (b'{"v":2,"k":"x","s":"","p":[]}', "unknown_version"),  # wire v2 (JSON): no device sends it
        (b'{"v":1,"records":[]}', "unknown_version"),  # wire v1 (JSON): no device sends it
        (b"PDS\x02", "unknown_version"),
        (b"PDS\x03", "malformed"),
        (b"PDS\x03\x01k" + bytes(64) + b"\x00\x00", "malformed"),
        (b"x" * (600 * 1024), "oversized"),
    ],
)
def test_bad_up_messages_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_up(raw)
    assert info.value.reason == reason


def test_payload_with_missing_or_extra_or_mistyped_fields_is_rejected() -> None:
    good = payload()
    with pytest.raises(EnvelopeError, match="unexpected"):
        parse_payload(good.replace(b'"dev"', b'"extra":1,"dev"'))
    with pytest.raises(EnvelopeError, match="seq"):
        parse_payload(good.replace(b'"seq":1', b'"seq":"1"'))
    with pytest.raises(EnvelopeError, match="oversized"):
        make_payload(
            dev="PD-1", epoch="e", seq=1, record_id="i", stream="payment", sv=1, ts=T0, prev="", refs={},
            body={"x": "y" * MAX_RECORD_BYTES},
        )  # fmt: skip


def test_unknown_record_type_or_version_is_rejected_not_half_read() -> None:
    with pytest.raises(RecordRejected) as info:
        parse_body("payment", 2, payment_body())
    assert info.value.reason == "unknown_version"
    with pytest.raises(RecordRejected) as info:
        parse_body("teleport", 1, {})
    assert info.value.reason == "unknown_type"
    newer = {**payment_body(), "tip_minor": 5}
    with pytest.raises(RecordRejected, match="tip_minor"):
        parse_body("payment", 1, newer)
    with pytest.raises(RecordRejected, match="amount_minor"):
        validate_for_enqueue("payment", {**payment_body(), "amount_minor": -1})


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=2**53),
    amount=st.integers(min_value=0, max_value=10**12),
    dev=st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
)
def test_any_valid_record_survives_sign_encode_decode_verify(seq: int, amount: int, dev: str) -> None:
    data = payload(seq, payment_body(amount), dev)
    back = decode_up(encode_batch_message(DEVICE, [data]))
    back.verify(KeyRing([Verifier(DEVICE.public_raw())]))
    parsed = parse_payload(back.payloads[0])
    assert (parsed.seq, parsed.dev, parsed.body["amount_minor"]) == (seq, dev, amount)
    assert back.digests[0].hex() == sha256_hex(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(blob: bytes) -> None:
    for data in (blob, BINARY_MAGIC + blob):
        with contextlib.suppress(EnvelopeError):
            decode_up(data)


def test_ack_is_signed_and_only_the_server_key_opens_it() -> None:
    item = AckItem(epoch="e1", seq=1, sha256=sha256_hex(b"x"), status="ok")
    wire = seal(SERVER, DOMAIN_ACK, Ack(dev="PD-1", ts=T0.isoformat(), acks=[item]))
    body, kid = open_signed(wire, KeyRing([Verifier(SERVER.public_raw())]), DOMAIN_ACK)
    assert kid == SERVER.kid and parse_control(body) == Ack(dev="PD-1", ts=T0.isoformat(), acks=[item])
    with pytest.raises(BadSignature):
        open_signed(wire, KeyRing([Verifier(DEVICE.public_raw())]), DOMAIN_ACK)
    with pytest.raises(EnvelopeError):
        parse_control(b'{"type":"format_disk"}')
    assert isinstance(parse_control(b'{"type":"hello","dev":"d","epoch":"e","max_seq":0,"ts":"t"}'), Hello)


def test_dataset_manifest_is_verified_and_rollback_refused() -> None:
    ring = KeyRing([Verifier(SERVER.public_raw())])
    v2 = sign_dataset(SERVER, "tariffs", 2, b'{"mrp":3932}', T0)
    manifest, signed = open_dataset(v2.to_wire(), ring)
    assert (manifest.version, signed.content) == (2, b'{"mrp":3932}')
    check_newer(manifest, 1)
    with pytest.raises(RollbackRefused):
        check_newer(manifest, 2)
    corrupt = type(v2)(v2.manifest_bytes, v2.sig, v2.kid, b'{"mrp":1}')
    with pytest.raises(EnvelopeError, match="does not match"):
        open_dataset(corrupt.to_wire(), ring)
    with pytest.raises(BadSignature):
        open_dataset(sign_dataset(Signer.generate(), "tariffs", 9, b"{}", T0).to_wire(), ring)


# --- wire v3 (binary signed batch), message planning and the device's ack parser ---


def test_v3_batch_round_trips_and_verifies_with_one_signature() -> None:
    payloads = [payload(seq) for seq in range(1, 6)]
    wire = encode_batch_message(DEVICE, payloads)
    assert wire.startswith(BINARY_MAGIC)
    batch = decode_up(wire)
    assert isinstance(batch, SignedBatch)
    assert batch.payloads == payloads and batch.kid == DEVICE.kid
    batch.verify(KeyRing([Verifier(DEVICE.public_raw())]))
    tampered = decode_up(frame_batch(batch.kid, batch.sig, [payloads[0].replace(b'"seq":1', b'"seq":9')]))
    assert isinstance(tampered, SignedBatch)
    with pytest.raises(BadSignature):
        tampered.verify(KeyRing([Verifier(DEVICE.public_raw())]))


def _v3(count: int = 1, body: bytes = b"{}", kid: bytes = b"kid1", sig: bytes = b"s" * 64) -> bytes:
    return (
        BINARY_MAGIC
        + bytes((len(kid),))
        + kid
        + sig
        + count.to_bytes(2, "big")
        + len(body).to_bytes(4, "big")
        + body
    )


@pytest.mark.parametrize(
    ("raw", "reason", "says"),
    [
        (BINARY_MAGIC, "malformed", "key id"),
        (_v3(kid=b""), "malformed", "key id"),
        (_v3(kid="ключ".encode()), "malformed", "ASCII"),
        (_v3()[:40], "malformed", "signature"),
        (_v3(count=0), "malformed", "0 records"),
        (_v3(count=501), "malformed", "501 records"),
        (_v3(count=2), "malformed", "record 1"),
        (_v3()[:-1], "malformed", "inside record 0"),
        (_v3() + b"x", "malformed", "unexpected bytes"),
        (_v3()[:-6] + (MAX_RECORD_BYTES + 1).to_bytes(4, "big"), "oversized", "record 0"),
        (b"PDS\x04" + _v3()[4:], "unknown_version", "04"),
    ],
)
def test_bad_v3_messages_are_rejected_with_a_reason(raw: bytes, reason: str, says: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_up(raw)
    assert info.value.reason == reason and says in info.value.detail


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_after_the_v3_magic_never_crash_the_decoder(blob: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_up(BINARY_MAGIC + blob)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=MAX_RECORD_BYTES), max_size=120),
    max_records=st.integers(min_value=1, max_value=600),
)
def test_message_plan_keeps_every_record_once_in_order_and_under_both_limits(
    sizes: list[int], max_records: int
) -> None:
    runs = plan_messages("kid-1", sizes, max_records)
    assert [i for a, b in runs for i in range(a, b)] == list(range(len(sizes)))  # each once, in order
    for a, b in runs:
        assert 1 <= b - a <= min(max_records, MAX_RECORDS_PER_MESSAGE)
        assert message_bytes("kid-1", sizes[a:b]) <= MAX_MESSAGE_BYTES


def test_a_batch_of_large_records_goes_in_several_messages_the_server_accepts() -> None:
    big = [payload(seq, {**payment_body(), "masked_pan": "x" * 20_000}) for seq in range(1, 61)]
    runs = plan_messages(DEVICE.kid, [len(p) for p in big], 100)
    assert len(runs) > 1  # 60 × ~20 KB would be ~1.2 MB in one message, over the server's 512 KiB
    for a, b in runs:
        batch = decode_up(encode_batch_message(DEVICE, big[a:b]))
        assert isinstance(batch, SignedBatch) and batch.payloads == big[a:b]


def test_device_ack_parser_accepts_what_the_server_sends_and_names_what_is_wrong() -> None:
    entries = [
        AckEntry("e1", 7, sha256_hex(b"x"), "ok"),
        AckEntry("e1", 8, sha256_hex(b"y"), "rejected", "invalid_body"),
    ]
    wire = seal(SERVER, DOMAIN_ACK, ack_body("PD-1", T0.isoformat(), entries))
    body, _kid = open_signed(wire, KeyRing([Verifier(SERVER.public_raw())]), DOMAIN_ACK)
    assert parse_ack(body) == ("PD-1", entries)
    assert parse_control(body) == Ack(
        dev="PD-1", ts=T0.isoformat(), acks=[AckItem(**e._asdict()) for e in entries]
    )
    good = {"epoch": "e1", "seq": 7, "sha256": sha256_hex(b"x"), "status": "ok", "reason": None}
    for bad, says in [
        ({**good, "seq": 0}, "seq"),
        ({**good, "seq": True}, "seq"),
        ({**good, "sha256": "ab"}, "sha256"),
        ({**good, "status": "deleted"}, "status"),
        ({**good, "extra": 1}, "keys"),
    ]:
        raw = json.dumps({"type": "ack", "dev": "PD-1", "ts": "t", "acks": [good, bad]}).encode()
        with pytest.raises(EnvelopeError, match=f"acks.1.*{says}|acks.1: keys"):
            parse_ack(raw)
    with pytest.raises(EnvelopeError, match="not an ack"):
        parse_ack(b'{"type":"resend","dev":"PD-1","ts":"t","acks":[]}')
    with pytest.raises(EnvelopeError, match="JSON"):
        parse_ack(b"\xff")
