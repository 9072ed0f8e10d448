"""The unpaid-fines look-up for other state systems (API key, rate limit, audit, nothing but count, total and
oldest date) and the devices' unpaid-fines list built from the same data: signed, sent down, read by the
device's roadside check; its format against hostile bytes; and the size of a whole country's list."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from core.fines.unpaid_list import UnpaidEntry, UnpaidList, UnpaidListError, encode_unpaid
from core.sync.control import SyncRef
from core.sync.datasets import MAX_CHUNKED_DATASET_BYTES
from core.sync.signing import KeyRing, Verifier
from edge.commands.unpaid import lookup as device_lookup
from edge.sync.datasets import DatasetAssembler, apply_dataset
from server.db.api_clients import ApiClient, LookupAudit
from server.db.base import transaction
from server.db.sync import SyncDataset
from server.fines.daily_run import FineWork
from server.fines.unpaid_dataset import DATASET, publish_unpaid
from server.ingest.datasets import ref_messages
from tests.conftest import ROOT
from tests.fines.conftest import (
    DAY0,
    IIN,
    IIN2,
    T0,
    Api,
    Device,
    add_provider,
    count,
    kz_protocol,
    provider_post,
)


@pytest.fixture
def owing(api: Api, device: Device) -> Api:
    """IIN owes three fines (issued 27 and 28 February and 2 March, all still in the discount window); IIN2 owes
    nothing."""
    for i, day in enumerate((date(2026, 2, 27), date(2026, 2, 28), DAY0)):
        device.send(("protocol", kz_protocol(f"KZ-L-{i}", day=day)))
    return api


def test_the_look_up_answers_count_total_due_and_oldest_date_and_nothing_else(owing: Api) -> None:
    api = owing
    headers = api.key("lookup")
    r = api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=headers)
    assert r.status_code == 200
    assert r.json() == {
        "iin": IIN,
        "count": 3,
        "total_due_minor": 3 * 1081250,
        "currency": "KZT",
        "oldest": "2026-02-27",
    }
    assert api.client.get(f"/api/fines/unpaid?iin={IIN2}", headers=headers).json() == {
        "iin": IIN2, "count": 0, "total_due_minor": 0, "currency": None, "oldest": None,
    }  # fmt: skip
    key = add_provider(api.sessions)
    body = {
        "reference": "P1",
        "fine": "KZ-L-2",
        "amount_minor": 1081250,
        "currency": "KZT",
        "value_date": "2026-03-02",
    }
    assert provider_post(api, "halyk", key, body).status_code == 201
    assert api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=headers).json()["count"] == 2


def test_the_look_up_needs_a_key_with_its_scope(owing: Api) -> None:
    api = owing
    assert api.client.get(f"/api/fines/unpaid?iin={IIN}").status_code == 401
    assert api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=api.key("import")).status_code == 401
    bad = {"Authorization": "Bearer pk_" + "A" * 43}
    assert api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=bad).status_code == 401
    headers = api.key("lookup", name="egov-notary")
    with transaction(api.sessions) as session:
        session.execute(update(ApiClient).where(ApiClient.name == "egov-notary").values(active=False))
    assert api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=headers).status_code == 401
    assert count(api.sessions, LookupAudit) == 0


def test_a_malformed_iin_is_refused_by_name(owing: Api) -> None:
    headers = owing.key("lookup")
    r = owing.client.get("/api/fines/unpaid?iin=850101300125", headers=headers)
    assert (
        r.status_code == 422
        and r.json()["detail"]["field"] == "iin"
        and "check" in r.json()["detail"]["error"]
    )
    assert owing.client.get("/api/fines/unpaid?iin=" + "9" * 40, headers=headers).status_code == 422
    assert owing.client.get("/api/fines/unpaid", headers=headers).status_code == 422


def test_each_client_is_rate_limited_and_every_answer_audited(owing: Api) -> None:
    api = owing
    slow, other = (
        api.key("lookup", per_minute=3, name="kolesa"),
        api.key("lookup", per_minute=3, name="notary"),
    )
    for _ in range(3):
        assert api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=slow).status_code == 200
    r = api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=slow)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 20
    assert api.client.get(f"/api/fines/unpaid?iin={IIN2}", headers=other).status_code == 200  # its own bucket
    api.clock.advance(20)
    assert api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=slow).status_code == 200
    with api.sessions() as session:
        rows = [
            (a.client, a.person_id, a.unpaid_count)
            for a in session.scalars(select(LookupAudit).order_by(LookupAudit.id))
        ]
    assert rows == [("kolesa", IIN, 3)] * 3 + [("notary", IIN2, 0), ("kolesa", IIN, 3)]
    with pytest.raises(DBAPIError, match="append-only"), transaction(api.sessions) as session:
        session.execute(text("UPDATE lookup_audit SET person_id = '000000000000'"))


def test_the_devices_list_is_built_from_the_same_data_and_read_at_the_roadside(
    owing: Api, work: FineWork, device_sessions: sessionmaker[Session]
) -> None:
    api = owing
    with transaction(api.sessions) as session:
        assert publish_unpaid(session, work.signer, "KZ", T0) == 1
        assert publish_unpaid(session, work.signer, "KZ", T0) is None  # unchanged: no new version
    keys = KeyRing([Verifier(work.signer.public_raw())])
    now = T0 + timedelta(hours=2)
    with device_sessions() as session:
        assert device_lookup(session, IIN, now) == {"iin": IIN, "list": None, "message": "no list yet"}
    with api.sessions() as session:
        messages = ref_messages(session, SyncRef(dev="PD-1", have={}))
    assert len(messages) == 1
    with device_sessions() as session, session.begin():
        assert apply_dataset(session, messages[0], keys, T0, DatasetAssembler()) is not None
    with device_sessions() as session:
        shown = device_lookup(session, IIN, now)
        assert shown["count"] == 3 and shown["total_minor"] == 3 * 1081250 and shown["oldest"] == "2026-02-27"
        assert (
            shown["total"] == "32\u00a0437.50 ₸"
            and shown["list"]["version"] == 1
            and shown["list"]["age_hours"] == 2.0
        )
        assert device_lookup(session, IIN2, now)["count"] == 0
    api_answer = api.client.get(f"/api/fines/unpaid?iin={IIN}", headers=api.key("lookup")).json()
    assert (api_answer["count"], api_answer["total_due_minor"]) == (shown["count"], shown["total_minor"])
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", "unpaid", IIN, "--db", str(device_sessions.kw["bind"].url)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["count"] == 3


def test_only_the_newest_versions_are_kept(api: Api, device: Device, work: FineWork) -> None:
    for i in range(4):
        device.send(("protocol", kz_protocol(f"KZ-V-{i}")))
        with transaction(api.sessions) as session:
            assert publish_unpaid(session, work.signer, "KZ", T0) == i + 1
    with api.sessions() as session:
        assert list(session.scalars(select(SyncDataset.version).where(SyncDataset.dataset == DATASET))) == [
            3,
            4,
        ]


def test_a_whole_countrys_list_fits_the_signed_dataset_path() -> None:
    """Measured on 200 000 people in a realistic mix, extrapolated to 5 million people with unpaid fines (about a
    quarter of Kazakhstan): it must fit the chunked dataset limit."""
    rng = random.Random(15)
    people = sorted(rng.sample(range(10**11, 10**12), 200_000))
    entries = [
        UnpaidEntry(f"{p:012d}", n, sum(rng.choice((1081250, 2162500, 4325000, 8650000)) for _ in range(n)),
                    date(2025, 1, 1) + timedelta(days=rng.randint(0, 450)))
        for p in people
        for n in (rng.choice((1, 1, 1, 1, 2, 2, 3, 5)),)
    ]  # fmt: skip
    content = encode_unpaid(entries, "KZT")
    per_person = len(content) / len(entries)
    assert per_person * 5_000_000 < MAX_CHUNKED_DATASET_BYTES, f"{per_person:.1f} bytes a person"
    parsed = UnpaidList.parse(content)
    for e in rng.sample(entries, 200):
        assert parsed.lookup(e.person_id) == e


@given(st.lists(st.tuples(st.integers(10**11, 10**12 - 1), st.integers(1, 9), st.integers(0, 10**9),
                          st.integers(0, 9000)), max_size=60, unique_by=lambda t: t[0]))  # fmt: skip
def test_any_list_comes_back_as_it_was_encoded(rows: list[tuple[int, int, int, int]]) -> None:
    entries = [UnpaidEntry(f"{p:012d}", n, t, date(2000, 1, 1) + timedelta(days=d)) for p, n, t, d in rows]
    parsed = UnpaidList.parse(encode_unpaid(entries, "KZT"))
    assert list(parsed) == sorted(entries, key=lambda e: e.person_id)
    for e in entries:
        assert parsed.lookup(e.person_id) == e
    assert parsed.lookup("000000000001") is None or any(e.person_id == "000000000001" for e in entries)
    assert parsed.lookup("12345") is None and parsed.lookup("１２３４５６７８９０１２") is None


GOOD = encode_unpaid([UnpaidEntry(IIN, 2, 2162500, DAY0), UnpaidEntry(IIN2, 1, 1081250, DAY0)], "KZT")


@settings(max_examples=300)
@given(
    st.one_of(st.binary(max_size=300), st.binary(max_size=40).map(lambda b: GOOD[: len(b) % len(GOOD)] + b))
)
def test_hostile_bytes_are_refused_by_name_and_never_crash_the_reader(data: bytes) -> None:
    try:
        parsed = UnpaidList.parse(data)
    except UnpaidListError:
        return
    parsed.lookup(IIN)
    list(parsed)


def test_a_decompression_bomb_is_refused() -> None:
    import struct
    import zlib

    head = struct.pack(">4sBBBB3sBI", b"PKUF", 1, 12, 15, 0, b"KZT", 0, 2)
    with pytest.raises(UnpaidListError, match="2 records announced"):
        UnpaidList.parse(zlib.compress(head + b"\0" * 50_000_000))


def test_an_iin_listed_twice_or_out_of_range_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        encode_unpaid([UnpaidEntry(IIN, 1, 1, DAY0), UnpaidEntry(IIN, 1, 1, DAY0)], "KZT")
    with pytest.raises(ValueError, match="12 digits"):
        encode_unpaid([UnpaidEntry("12", 1, 1, DAY0)], "KZT")
    with pytest.raises(ValueError, match="oldest date"):
        encode_unpaid([UnpaidEntry(IIN, 1, 1, date(1999, 1, 1))], "KZT")
