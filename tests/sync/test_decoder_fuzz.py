"""Every decoder of the sync contract, fed random bytes and mutated valid messages (hypothesis): up-messages (wire
v1, v2, v3), record payloads and bodies of every type and version, Hello and the other control requests, acks,
dataset requests and dataset messages. Nothing may raise but the decoder's own error. Mutated messages are
signed again after the mutation, so that they get past the signature to the checks behind it.

The last property runs the server's whole check-and-store path (``ingest_batch``) on such messages against
the database under test (PostgreSQL when configured): it must never raise and its transaction must commit,
whatever the fields hold.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker
from sync_harness import provision

from core.sync.control import (
    AckEntry,
    ack_body,
    open_signed,
    parse_ack,
    parse_control,
    req_topic,
    seal,
    up_topic,
)
from core.sync.datasets import open_ref, sign_dataset
from core.sync.envelope import (
    EnvelopeError,
    decode_up,
    encode_batch_message,
    make_payload,
    parse_payload,
)
from core.sync.records import RECORD_MODELS, RecordRejected, parse_body
from core.sync.signing import DOMAIN_ACK, DOMAIN_REQUEST, BadSignature, KeyRing, Signer, Verifier, b64e
from server.ingest.datasets import DatasetAnswers, publish_dataset
from server.ingest.limits import body_problem, head_problem
from server.ingest.pipeline import Incoming, ingest_batch
from server.ingest.registry import DeviceRegistry

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEVICE = Signer.generate()
SERVER = Signer.generate()
UUID = "9f0c7c6e-0000-4000-8000-000000000001"
PROTOCOL = {
    "number": "KZ-1", "jurisdiction": "KZ", "article": "610-1", "article_title": "", "offence_at": T0,
    "offence_date": date(2026, 3, 2), "place": "", "lat": None, "lon": None, "driver_name": "IVANOV",
    "driver_iin": "900101300123", "vehicle_plate": "123ABC01", "officer_badge": "B-17", "officer_name": None,
    "currency": "KZT", "fine_units": 10, "unit_value_minor": 393_200, "unit_year": 2026, "full_minor": 3_932_000,
    "reduced_minor": 1_966_000, "discount_deadline": date(2026, 3, 9), "legal_basis": "",
    "dataset_version": "tariffs@1", "status": "open", "created_at": T0,
}  # fmt: skip
SEGMENT_V1 = {
    "segment_id": UUID, "recording_id": "rec-1", "seq": 3, "started_at": T0, "ended_at": T0,
    "file_name": "seg00003.mp4", "size_bytes": 1000, "sha256": "a" * 64,
}  # fmt: skip
SAMPLES: dict[tuple[str, int], dict[str, Any]] = {
    ("protocol", 1): PROTOCOL,
    ("payment", 1): {
        "id": UUID,
        "protocol_number": "KZ-1",
        "amount_minor": 1_966_000,
        "currency": "KZT",
        "full_amount_minor": 3_932_000,
        "status": "approved",
        "name_check": "MATCH",
        "officer_badge": "B-17",
        "approved_at": T0,
    },
    ("own_card_check", 1): {
        "check_id": UUID,
        "protocol_number": "KZ-1",
        "driver_name": "IVANOV",
        "result": "MATCH",
        "checked_at": T0,
    },
    ("receipt_job", 1): {"job_id": UUID, "copy_no": 1, "event": "printed", "occurred_at": T0},
    ("segment", 1): SEGMENT_V1,
    ("segment", 2): {
        **SEGMENT_V1,
        "start_lat": 43.2,
        "start_lon": 76.9,
        "end_lat": 43.2,
        "end_lon": 76.9,
        "gps_fix_seconds": 60,
        "gps_seconds": 60,
    },
    ("recording_gap", 1): {"gap_id": UUID, "started_at": T0, "ended_at": T0, "reason": "power_loss"},
    ("bookmark", 1): {"bookmark_id": UUID, "started_at": T0, "label": "stop"},
    ("bookmark", 2): {"bookmark_id": UUID, "started_at": T0, "ended_at": T0, "label": "stop"},
    ("device_status", 1): {"outbox_pending": 3, "app_version": "0.1.0", "measured_at": T0},
}
BODIES = {key: RECORD_MODELS[key].model_validate(body).to_body() for key, body in SAMPLES.items()}
KEYS = sorted(BODIES)

# values an attacker puts in a field: out of every column's range, too long, of the wrong type, nested, NUL
BIG_INTS = [
    2**15,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    2**70,
]
LONG_TEXTS = ["x" * n for n in (4, 13, 17, 33, 37, 65, 201, 257, 5000)] + ["\x00", "a\x00b"]
hostile = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(BIG_INTS),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=80),
        st.sampled_from([*LONG_TEXTS, "2026-03-02T09:00:00+00:00", "2026-03-02"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def same_kind(value: Any) -> st.SearchStrategy[Any]:
    """A hostile value of the same JSON type as ``value``, so that it passes type checks and meets the
    limits behind them: an integer at or past a column's range, a string past a column's length."""
    if isinstance(value, bool) or value is None:
        return hostile
    if isinstance(value, int):
        return st.one_of(st.sampled_from(BIG_INTS), st.sampled_from(BIG_INTS).map(lambda n: -n))
    if isinstance(value, str):
        return st.one_of(st.sampled_from(LONG_TEXTS), st.sampled_from(LONG_TEXTS).map(lambda t: value + t))
    return hostile


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after a few byte-level edits: flips, insertions, deletions, truncation, deep nesting (often
    where a JSON value starts), huge numbers."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "nest", "number"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "nest" and draw(st.booleans()):  # where a JSON value starts
            starts = [i + 1 for i, c in enumerate(out) if c in b":["]
            at = draw(st.sampled_from(starts)) if starts else at
        if op == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[at : at + draw(st.integers(1, 32))]
        elif op == "truncate":
            del out[at:]
        elif op == "nest":
            out[at:at] = draw(st.sampled_from([b"[", b"{", b'{"a":'])) * draw(st.integers(10, 5000))
        else:
            out[at:at] = str(draw(st.sampled_from(BIG_INTS))).encode()
    return bytes(out)


@st.composite
def mutated_dict(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one to three fields changed: most often to a hostile value of the same type, else to
    anything, or removed, or a new field added."""
    out = dict(base)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(base)))
        how = draw(st.sampled_from(["same", "same", "same", "any", "drop", "extra"]))
        if how == "same":
            out[name] = draw(same_kind(base[name]))
        elif how == "any":
            out[name] = draw(hostile)
        elif how == "drop":
            out.pop(name, None)
        else:
            out[draw(st.text(max_size=8))] = draw(hostile)
    return out


def payload_dict(key: tuple[str, int], dev: str = "PD-1", seq: int = 1) -> dict[str, Any]:
    return {"dev": dev, "epoch": "e1", "seq": seq, "id": str(uuid.uuid4()), "stream": key[0], "sv": key[1],
            "ts": T0.isoformat(), "prev": "", "refs": {"tariffs": 3}, "body": BODIES[key]}  # fmt: skip


def as_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def valid_up_messages() -> list[bytes]:
    payloads = [make_payload(dev="PD-1", epoch="e1", seq=i + 1, record_id=f"{UUID[:-1]}{i}", stream=k[0], sv=k[1],
                             ts=T0, prev="", refs={}, body=BODIES[k]) for i, k in enumerate(KEYS[:3])]  # fmt: skip
    return [encode_batch_message(DEVICE, payloads), encode_batch_message(DEVICE, payloads[:1])]


UP_MESSAGES = valid_up_messages()  # made once: the mutations hypothesis replays must meet the same bytes


def requests() -> list[dict[str, Any]]:
    return [
        {"type": "hello", "dev": "PD-1", "epoch": "e1", "max_seq": 41, "ts": T0.isoformat()},
        {
            "type": "sync_ref",
            "dev": "PD-1",
            "have": {"tariffs": 3},
            "partial": {"unpaid_fines": {"version": 4, "chunks": [0, 2]}},
        },
        {"type": "ref_applied", "dev": "PD-1", "dataset": "tariffs", "version": 3},
        {"type": "credit_ask", "dev": "PD-1", "want": 100},
        {"type": "credit", "dev": "PD-1", "records": 100, "valid_s": 5.0, "ts": T0.isoformat()},
    ]


def signed_request(obj: Any, signer: Signer = DEVICE) -> bytes:
    payload = as_json(obj)
    return as_json(
        {"k": signer.kid, "p": b64e(payload), "s": b64e(signer.sign(DOMAIN_REQUEST, payload)), "v": 1}
    )


# --- up-messages and record payloads -------------------------------------------------------------------------


@given(st.binary(max_size=4096))
def test_random_bytes_never_raise_but_envelope_errors_from_the_up_message_decoder(blob: bytes) -> None:
    for data in (blob, b"PDS\x03" + blob, b'{"v":2,' + blob, b'{"v":1,"records":' + blob):
        with contextlib.suppress(EnvelopeError):
            decode_up(data)


@given(st.data())
def test_mutated_up_messages_raise_only_envelope_errors(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from(UP_MESSAGES))
    with contextlib.suppress(EnvelopeError):
        decode_up(data.draw(mutated_bytes(message)))


@given(st.data())
def test_mutated_record_payloads_raise_only_envelope_errors_and_never_escape_the_limits(
    data: st.DataObject,
) -> None:
    key = data.draw(st.sampled_from(KEYS))
    raw = as_json(payload_dict(key))
    mutated = data.draw(st.one_of(mutated_bytes(raw), mutated_dict(payload_dict(key)).map(as_json)))
    try:
        head = parse_payload(mutated)
    except EnvelopeError:
        return
    assert head_problem(head) is None or isinstance(head_problem(head), str)


# --- record bodies ----------------------------------------------------------------------------------------------


@given(st.data())
def test_mutated_bodies_of_every_record_type_raise_only_record_rejected(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(KEYS))
    body = data.draw(mutated_dict(BODIES[key]))
    try:
        parsed = parse_body(key[0], key[1], orjson.loads(as_json(body)))
    except RecordRejected:
        return
    why = body_problem(key[0], parsed)  # the server's column limits decide on whatever the model accepted
    assert why is None or isinstance(why, str)


@given(st.binary(max_size=2048))
def test_random_bytes_as_a_body_raise_only_record_rejected(blob: bytes) -> None:
    try:
        body = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return
    for key in KEYS:
        with contextlib.suppress(RecordRejected):
            parse_body(key[0], key[1], body)


# --- Hello, control requests, dataset requests, acks and dataset messages --------------------------------------


RING = KeyRing([Verifier(DEVICE.public_raw())])


@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_envelope_errors_or_bad_signatures_from_the_request_decoder(
    blob: bytes,
) -> None:
    for data in (blob, b'{"v":1,"k":' + blob):
        with contextlib.suppress(EnvelopeError, BadSignature):
            parse_control(open_signed(data, RING, DOMAIN_REQUEST)[0])


@given(st.data())
def test_mutated_and_resigned_hello_sync_ref_and_ref_applied_raise_only_envelope_errors(
    data: st.DataObject,
) -> None:
    request = data.draw(st.sampled_from(requests()))
    wire = data.draw(
        st.one_of(
            mutated_dict(request).map(signed_request),  # past the signature: the fields are hostile
            st.builds(lambda b: signed_request(b), st.just(request)).flatmap(mutated_bytes),  # the wrapper is
        )
    )
    try:
        payload, _kid = open_signed(wire, RING, DOMAIN_REQUEST)
        parse_control(payload)
    except (EnvelopeError, BadSignature):
        pass


@given(st.data())
def test_mutated_acks_raise_only_envelope_errors_or_bad_signatures_on_the_device(data: st.DataObject) -> None:
    ack = ack_body("PD-1", T0.isoformat(), [AckEntry("e1", i, "a" * 64, "ok") for i in range(1, 4)])
    raw = orjson.dumps(ack, option=orjson.OPT_SORT_KEYS)
    with contextlib.suppress(EnvelopeError):  # a payload the server's key signed, fields hostile
        parse_ack(data.draw(st.one_of(mutated_bytes(raw), mutated_dict(ack).map(as_json))))
    wire = data.draw(mutated_bytes(seal(SERVER, DOMAIN_ACK, ack)))  # the signed wrapper itself mutated
    with contextlib.suppress(EnvelopeError, BadSignature):
        parse_ack(open_signed(wire, KeyRing([Verifier(SERVER.public_raw())]), DOMAIN_ACK)[0])


@given(st.data())
def test_mutated_dataset_messages_raise_only_envelope_errors_or_bad_signatures_on_the_device(
    data: st.DataObject,
) -> None:
    small = sign_dataset(SERVER, "tariffs", 3, b'{"mrp_minor":393200}', T0)
    chunked = sign_dataset(SERVER, "unpaid_fines", 4, b"x" * 300, T0, chunk_size=128)
    message = data.draw(st.sampled_from([small.to_wire(), *chunked.wire_messages()]))
    with contextlib.suppress(EnvelopeError, BadSignature):
        open_ref(data.draw(mutated_bytes(message)), KeyRing([Verifier(SERVER.public_raw())]))


# --- the server's whole path: checks, limits and the database ---------------------------------------------------


@st.composite
def signed_message(draw: st.DrawFn, dev: str, signer: Signer) -> Incoming:
    """A record or request of the device, fields mutated, signed by its key, as the broker delivers it."""
    if draw(st.integers(0, 4)) == 0:
        request = dict(draw(st.sampled_from(requests())), dev=dev)
        return Incoming(req_topic(dev), signed_request(draw(mutated_dict(request)), signer))
    key = draw(st.sampled_from(KEYS))
    payload = payload_dict(key, dev, seq=draw(st.integers(1, 10**6)))
    if draw(st.booleans()):
        payload["body"] = draw(mutated_dict(payload["body"]))
    else:
        payload = draw(mutated_dict(payload))
    return Incoming(up_topic(dev, key[0]), encode_batch_message(signer, [as_json(payload)]))


def test_the_ingest_never_raises_and_always_commits_on_hostile_signed_messages(
    server_sessions: sessionmaker[Session],
) -> None:
    dev, signer = provision(server_sessions)
    devices = DeviceRegistry(server_sessions)
    with server_sessions() as session, session.begin():  # what a sync_ref that passed its checks is answered from
        publish_dataset(session, SERVER, "tariffs", b'{"mrp_minor":393200}', T0)
        publish_dataset(session, SERVER, "unpaid_fines", b"x" * 300_000, T0)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(signed_message(dev.device_id, signer), min_size=1, max_size=3))
    def ingest(messages: list[Incoming]) -> None:
        with server_sessions() as session, session.begin():
            out = ingest_batch(session, messages, devices, T0)
        handled = out.accepted + out.duplicates + out.conflicts + out.dead_letters
        assert handled or out.acks or any(m.topic.endswith("/req") for m in messages)
        with server_sessions() as session:  # as the worker answers them after COMMIT
            answers = DatasetAnswers(session)
            for _device, ref in out.dataset_requests:
                assert all(isinstance(m, bytes) for m in answers.messages(ref))

    ingest()


def test_any_sync_ref_that_passes_its_checks_is_answered_and_none_raises(
    server_sessions: sessionmaker[Session],
) -> None:
    """Dataset refs of any names, versions and held chunks, signed by the device: each is refused or answered
    with the versions it lacks, from one read per batch, as the worker answers them after COMMIT."""
    dev, signer = provision(server_sessions)
    devices = DeviceRegistry(server_sessions)
    with server_sessions() as session, session.begin():
        publish_dataset(session, SERVER, "tariffs", b'{"mrp_minor":393200}', T0)
        chunks = len(list(publish_dataset(session, SERVER, "unpaid_fines", b"x" * 1_200_000, T0).wire_messages()))
    names = st.sampled_from(["tariffs", "unpaid_fines"]) | st.text(max_size=70)
    versions = st.integers(-(2**64), 2**64)
    held = st.fixed_dictionaries(
        {"version": st.just(1) | versions, "chunks": st.lists(st.integers(0, 3) | versions, max_size=8)}
    )
    answered: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.fixed_dictionaries({
        "have": st.dictionaries(names, versions, max_size=4), "partial": st.dictionaries(names, held, max_size=3),
    }), min_size=1, max_size=4))  # fmt: skip
    def answer(refs: list[dict[str, Any]]) -> None:
        messages = [
            Incoming(req_topic(dev.device_id), signed_request({"type": "sync_ref", "dev": dev.device_id, **r}, signer))
            for r in refs
        ]
        with server_sessions() as session, session.begin():
            out = ingest_batch(session, messages, devices, T0)
        assert len(out.dataset_requests) + out.dead_letters == len(messages)
        with server_sessions() as session:
            answers = DatasetAnswers(session)
            for _device, ref in out.dataset_requests:
                got = answers.messages(ref)
                partial = ref.partial.get("unpaid_fines")
                held = set(partial.chunks) & set(range(chunks)) if partial and partial.version == 1 else set()
                lacks = (ref.have.get("tariffs", 0) < 1) + (ref.have.get("unpaid_fines", 0) < 1) * (chunks - len(held))
                assert len(got) == lacks, (ref, len(got))  # what it lacks, less the chunks it holds
                answered.append(len(got))

    answer()
    assert chunks == 3 and answered, "no ref passed its checks: the property never reached the answers"


# --- the same, swept exhaustively: every field, every boundary value; deep nesting at every value -----------------


def boundary_values(value: Any) -> list[Any]:
    """Each hostile value of the same kind as ``value`` (see ``same_kind``), and a few of other kinds."""
    if isinstance(value, int) and not isinstance(value, bool):
        kind: list[Any] = [*BIG_INTS, *(-n for n in BIG_INTS)]
    elif isinstance(value, str):
        kind = [*LONG_TEXTS, *(value + t for t in LONG_TEXTS)]
    else:
        kind = []
    return [*kind, None, True, 2**63, "x" * 300, [], {"a": [1]}, 1e308]


def every_field_mutation(dev: str) -> list[dict[str, Any]]:
    """One payload per (record type, field of its header or body, boundary value)."""
    out = []
    for key in KEYS:
        base = payload_dict(key, dev)
        for name in sorted(base):
            for value in boundary_values(base[name]):
                out.append({**payload_dict(key, dev), name: value})
        for name in sorted(base["body"]):
            for value in boundary_values(base["body"][name]):
                payload = payload_dict(key, dev)
                payload["body"] = {**payload["body"], name: value}
                out.append(payload)
    return out


def test_every_field_of_every_record_type_at_every_boundary_is_refused_or_stored_never_raised(
    server_sessions: sessionmaker[Session],
) -> None:
    dev, signer = provision(server_sessions)
    devices = DeviceRegistry(server_sessions)
    payloads = every_field_mutation(dev.device_id)
    requests_ = [
        {**r, "dev": dev.device_id, name: value}
        for r in requests()
        for name in r
        for value in boundary_values(r[name])
    ]
    messages = [Incoming(up_topic(dev.device_id, str(p.get("stream"))[:32] or "x"),
                         encode_batch_message(signer, [as_json(p)])) for p in payloads]  # fmt: skip
    messages += [Incoming(req_topic(dev.device_id), signed_request(r, signer)) for r in requests_]
    outcomes = 0
    for i in range(0, len(messages), 250):
        with server_sessions() as session, session.begin():
            out = ingest_batch(session, messages[i : i + 250], devices, T0)
        outcomes += out.accepted + out.duplicates + out.conflicts + out.dead_letters
    assert outcomes >= len(payloads)  # every record stored, duplicated, in conflict or dead-lettered


def value_starts(data: bytes) -> list[int]:
    return [i + 1 for i, c in enumerate(data) if c in b":["]


def nested_everywhere(data: bytes, depth: int = 3000) -> list[bytes]:
    """``data`` with ``depth`` opening brackets inserted where each JSON value starts."""
    return [data[:at] + b"[" * depth + data[at:] for at in value_starts(data)]


def test_deep_nesting_where_any_value_starts_raises_only_each_decoders_own_error() -> None:
    ring = KeyRing([Verifier(DEVICE.public_raw())])
    server_ring = KeyRing([Verifier(SERVER.public_raw())])
    ack = orjson.dumps(ack_body("PD-1", T0.isoformat(), [AckEntry("e1", 1, "a" * 64, "ok")]))
    dataset = sign_dataset(SERVER, "tariffs", 3, b'{"mrp_minor":393200}', T0).to_wire()
    cases = [
        *((decode_up, m, (EnvelopeError,)) for m in UP_MESSAGES[1:]),  # v2 and v1 are JSON
        (parse_payload, as_json(payload_dict(("protocol", 1))), (EnvelopeError,)),
        *((lambda d: open_signed(d, ring, DOMAIN_REQUEST), signed_request(r), (EnvelopeError, BadSignature))
          for r in requests()),
        *((parse_control, as_json(r), (EnvelopeError,)) for r in requests()),
        (parse_ack, ack, (EnvelopeError,)),
        (lambda d: open_ref(d, server_ring), dataset, (EnvelopeError, BadSignature)),
    ]  # fmt: skip
    tried = 0
    for decode, valid, allowed in cases:
        for hostile_bytes in [b"[" * 100_000, *nested_everywhere(valid)]:
            tried += 1
            with contextlib.suppress(*allowed):
                decode(hostile_bytes)
    assert tried > 50
