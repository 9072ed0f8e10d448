"""A fine for every synced protocol (through the real ingest), the rules snapshot each fine keeps, and fines
imported from other systems through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from core.fines import DatasetError
from core.fines.datasets import lifecycle_text
from server.db.base import transaction
from server.db.fine_notices import FineNotification
from server.db.fine_payments import RefundCase
from server.db.fines import Fine, FineEvent, FineRules
from server.fines import issuing, rules_book
from server.fines.daily_run import FineWork
from tests.fines.conftest import DAY0, IIN, IIN2, T0, Api, Device, card_payment, count, kz_protocol, run


def fine(sessions: sessionmaker[Session], number: str) -> Fine:
    with sessions() as session:
        found = session.scalars(select(Fine).where(Fine.number == number)).one()
        session.expunge(found)
        return found


def events(sessions: sessionmaker[Session], number: str) -> list[tuple[str, str | None, str]]:
    with sessions() as session:
        rows = session.execute(
            select(FineEvent.kind, FineEvent.step, FineEvent.to_state)
            .join(Fine, Fine.id == FineEvent.fine_id)
            .where(Fine.number == number)
            .order_by(FineEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_every_synced_protocol_becomes_one_fine_under_the_current_rules(device: Device) -> None:
    outcome = device.send(("protocol", kz_protocol("KZ-A-1")), ("protocol", kz_protocol("KZ-A-2", iin=IIN2)))
    assert outcome.accepted == 2
    f = fine(device.server, "KZ-A-1")
    assert (f.source, f.jurisdiction, f.rules, f.state, f.unpaid) == (
        "protocol",
        "KZ",
        "lifecycle-kz@1",
        "issued",
        True,
    )
    assert (f.full_minor, f.reduced_minor, f.discount_deadline) == (2162500, 1081250, date(2026, 3, 12))
    assert (f.due_minor, f.next_on, f.person_id, f.issued_on) == (1081250, DAY0, IIN, DAY0)
    assert f.tariff.startswith("fines-kz@")
    assert events(device.server, "KZ-A-1") == [("created", None, "issued")]
    with device.server() as session:
        stored = session.get_one(FineRules, "lifecycle-kz@1")
        assert stored.content == lifecycle_text("kz")
    # the same protocol synced again (a later record of it, still open) makes no second fine
    device.send(("protocol", kz_protocol("KZ-A-1")))
    assert count(device.server, Fine) == 2
    assert events(device.server, "KZ-A-1") == [("created", None, "issued")]


def test_a_protocol_paid_on_the_spot_gives_a_fine_paid_with_the_reduced_amount(
    device: Device, work: FineWork
) -> None:
    pid = str(uuid.uuid4())
    device.send(("protocol", kz_protocol("KZ-P-1")))
    device.send(("payment", card_payment(pid, "KZ-P-1")), ("protocol", kz_protocol("KZ-P-1", status="paid")))
    f = fine(device.server, "KZ-P-1")
    assert (f.state, f.unpaid, f.paid_minor, f.paid_on, f.paid_ref, f.due_minor) == (
        "paid_reduced", False, 1081250, DAY0, f"device:{pid}", 0,
    )  # fmt: skip
    run(device.server, date(2026, 3, 3), work)
    assert fine(device.server, "KZ-P-1").state == "closed"
    assert [e[2] for e in events(device.server, "KZ-P-1")] == ["issued", "paid_reduced", "closed"]


def test_a_protocol_and_its_payment_in_one_batch_are_settled_at_once(device: Device) -> None:
    pid = str(uuid.uuid4())
    device.send(("protocol", kz_protocol("KZ-P-2", status="paid")), ("payment", card_payment(pid, "KZ-P-2")))
    assert fine(device.server, "KZ-P-2").state == "paid_reduced"


def test_a_card_payment_that_does_not_fit_opens_a_refund_case(device: Device) -> None:
    pid = str(uuid.uuid4())
    late = datetime(
        2026, 3, 20, 9, 0, tzinfo=UTC
    )  # after the discount window: the reduced amount is not enough
    device.send(("protocol", kz_protocol("KZ-P-3")))
    device.send(
        ("payment", card_payment(pid, "KZ-P-3", at=late)),
        ("protocol", kz_protocol("KZ-P-3", status="paid")),
        now=late,
    )
    f = fine(device.server, "KZ-P-3")
    assert (f.state, f.unpaid, f.paid_ref) == ("issued", True, "")
    with device.server() as session:
        case = session.scalars(select(RefundCase)).one()
    assert (case.reason, case.amount_minor, case.device_payment_id, case.fine_id, case.status) == (
        "underpayment", 1081250, pid, f.id, "open",
    )  # fmt: skip
    device.send(("protocol", kz_protocol("KZ-P-3", status="paid")), now=late)  # the same status again
    assert count(device.server, RefundCase) == 1


def test_a_cancelled_protocol_cancels_its_fine(device: Device) -> None:
    device.send(("protocol", kz_protocol("KZ-C-1")))
    device.send(("protocol", kz_protocol("KZ-C-1", status="cancelled")))
    f = fine(device.server, "KZ-C-1")
    assert (f.state, f.unpaid, f.next_on) == ("cancelled", False, None)


def test_a_protocol_without_a_fine_makes_no_fine(device: Device) -> None:
    body = kz_protocol("KZ-N-1") | {"article": "596.3", "fine_units": 0, "full_minor": 0, "reduced_minor": 0}
    device.send(("protocol", body))
    assert count(device.server, Fine) == 0


def test_the_ingest_goes_on_when_no_fine_can_be_made_and_the_daily_run_makes_it_later(
    device: Device, work: FineWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("rules store unreachable")

    monkeypatch.setattr(issuing, "current_rules", broken)
    outcome = device.send(
        ("protocol", kz_protocol("KZ-S-1")), ("payment", card_payment(str(uuid.uuid4()), "KZ-S-1"))
    )
    assert outcome.accepted == 2 and outcome.dead_letters == 0
    assert count(device.server, Fine) == 0
    monkeypatch.undo()
    report = run(device.server, date(2026, 3, 3), work)
    assert report.swept == 1
    assert (
        fine(device.server, "KZ-S-1").state == "due"
        or fine(device.server, "KZ-S-1").state == "discount_window"
    )


def test_a_rules_file_changed_without_a_new_version_is_refused(
    server_sessions: sessionmaker[Session],
) -> None:
    with transaction(server_sessions) as session:
        session.add(
            FineRules(label="lifecycle-kz@1", jurisdiction="KZ", sha256="0" * 64, content="x", stored_at=T0)
        )
    rules_book._current.clear()
    with (
        pytest.raises(DatasetError, match="lifecycle-kz@1 is stored with other rules"),
        transaction(server_sessions) as s,
    ):
        rules_book.current_rules(s, "KZ", T0)


def test_an_issued_fine_keeps_running_by_the_rules_it_was_issued_under(
    server_sessions: sessionmaker[Session], work: FineWork
) -> None:
    """A fine issued under another rules version (demand after 20 days) keeps it; a new fine gets day 50."""
    old = (
        lifecycle_text("kz")
        .replace("version = 1", "version = 7", 1)
        .replace("after_days = 50", "after_days = 20")
    )
    with transaction(server_sessions) as session:
        session.add(
            FineRules(label="lifecycle-kz@7", jurisdiction="KZ", sha256="1" * 64, content=old, stored_at=T0)
        )
        issuing.issue_from_protocols(session, T0, [_protocol_row("KZ-R-OLD"), _protocol_row("KZ-R-NEW")])
        session.execute(
            Fine.__table__.update().where(Fine.number == "KZ-R-OLD").values(rules="lifecycle-kz@7")
        )
    run(server_sessions, date(2026, 3, 22), work)
    old_fine = fine(server_sessions, "KZ-R-OLD")
    assert (old_fine.state, old_fine.error) == ("demand_sent", "")
    assert fine(server_sessions, "KZ-R-NEW").state == "due"
    run(server_sessions, date(2026, 4, 21), work)
    assert fine(server_sessions, "KZ-R-NEW").state == "demand_sent"


def _protocol_row(number: str, **extra: Any) -> dict[str, Any]:
    body = kz_protocol(number)
    body["offence_date"] = date.fromisoformat(body["offence_date"])
    body["discount_deadline"] = date.fromisoformat(body["discount_deadline"])
    return body | extra


def test_the_protocols_phone_is_kept_for_notices(server_sessions: sessionmaker[Session]) -> None:
    with transaction(server_sessions) as session:
        issuing.issue_from_protocols(session, T0, [_protocol_row("KZ-T-1", phone="+7 (701) 123-45-67")])
    assert fine(server_sessions, "KZ-T-1").phone == "+77011234567"


# --- imports ------------------------------------------------------------------------------------------------


def camera_fine(number: str, **changes: Any) -> dict[str, Any]:
    item = {
        "number": number,
        "source": "camera:tbilisi",
        "jurisdiction": "GE",
        "article": "speed-40",
        "offence_at": "2026-03-02T07:15:00+00:00",
        "person_id": "01024050607",
        "person_name": "Giorgi Beridze",
        "plate": "AA-001-BB",
        "phone": "+995 599 12 34 56",
    }
    return item | changes


def test_imported_camera_fines_get_tariff_amounts_and_their_sms_at_once(api: Api) -> None:
    headers = api.key("import")
    r = api.client.post("/api/fines/import", json={"fines": [camera_fine("GE-CAM-1")]}, headers=headers)
    assert r.status_code == 200, r.text
    assert [(x["number"], x["outcome"]) for x in r.json()["results"]] == [("GE-CAM-1", "created")]
    f = fine(api.sessions, "GE-CAM-1")
    assert (f.full_minor, f.reduced_minor, f.discount_deadline, f.currency) == (
        30000,
        24000,
        date(2026, 3, 12),
        "GEL",
    )
    assert (f.state, f.source, f.rules, f.phone) == (
        "discount_window",
        "camera:tbilisi",
        "lifecycle-ge@1",
        "+995599123456",
    )
    with api.sessions() as session:
        sms = session.scalars(select(FineNotification)).one()
    assert (sms.step, sms.status, sms.phone) == ("sms_issued", "pending", "+995599123456")
    assert "GE-CAM-1" in sms.text and "240.00 ₾" in sms.text


def test_an_import_sent_twice_is_a_duplicate_and_a_changed_one_a_conflict(api: Api) -> None:
    headers = api.key("import")
    api.client.post("/api/fines/import", json={"fines": [camera_fine("GE-CAM-2")]}, headers=headers)
    r = api.client.post(
        "/api/fines/import",
        json={"fines": [camera_fine("GE-CAM-2"), camera_fine("GE-CAM-2", plate="ZZ-999-ZZ")]},
        headers=headers,
    )
    assert [x["outcome"] for x in r.json()["results"]] == ["duplicate", "conflict"]
    assert count(api.sessions, Fine) == 1 and count(api.sessions, FineNotification) == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"person_id": "123"}, "11 digits"),
        ({"article": "flying"}, "article 'flying' is not in dataset"),
        ({"jurisdiction": "KZ", "article": "592.1", "person_id": "850101300125"}, "check digit"),
        ({"phone": "call me"}, "phone"),
        ({"issued_on": "2026-03-01"}, "before the offence"),
    ],
)
def test_an_import_that_does_not_fit_is_refused_by_name_and_stores_nothing(
    api: Api, changes: dict[str, Any], reason: str
) -> None:
    r = api.client.post(
        "/api/fines/import", json={"fines": [camera_fine("GE-BAD-1", **changes)]}, headers=api.key("import")
    )
    result = r.json()["results"][0]
    assert result["outcome"] == "refused" and reason in result["detail"]
    assert count(api.sessions, Fine) == 0 and count(api.sessions, FineEvent) == 0


def test_the_import_api_needs_a_key_with_its_scope_and_refuses_bad_bodies(api: Api, clock: FakeClock) -> None:
    body = {"fines": [camera_fine("GE-CAM-3")]}
    assert api.client.post("/api/fines/import", json=body).status_code == 401
    assert api.client.post("/api/fines/import", json=body, headers=api.key("lookup")).status_code == 401
    headers = api.key("import")
    bad = api.client.post(
        "/api/fines/import", json={"fines": [camera_fine("x", offence_at="yesterday")]}, headers=headers
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["detail"]["errors"]} == {"fines.0.offence_at"}
    assert api.client.post("/api/fines/import", content=b"{", headers=headers).status_code == 422
    assert (
        api.client.post("/api/fines/import", json={"fines": [], "extra": 1}, headers=headers).status_code
        == 422
    )
    big = b'{"fines": [' + b" " * (1024 * 1024) + b"]}"
    assert api.client.post("/api/fines/import", content=big, headers=headers).status_code == 413
    assert count(api.sessions, Fine) == 0
