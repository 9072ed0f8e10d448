"""Payments from providers over the signed API (repeated, wrong in amount, in another currency, for an
unknown fine, a second payment, concurrent duplicates, forged or malformed requests) and the daily statement
reconciliation with every kind of mismatch."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.db.base import transaction
from server.db.fine_payments import ProviderPayment, ReconciliationItem, ReconciliationReport, RefundCase
from server.db.fines import Fine, FineEvent
from server.fines.daily_run import FineWork
from server.fines.payments import ProviderPaymentIn
from server.fines.reconciliation import StatementError, reconcile
from server.routes.fines_api import record_once
from tests.fines.conftest import (
    DAY0,
    Api,
    Device,
    add_provider,
    card_payment,
    count,
    kz_protocol,
    provider_post,
    run,
)


def body(
    fine: str, minor: int, reference: str | None = None, value_date: date = DAY0, currency: str = "KZT"
) -> dict[str, Any]:
    return {"reference": reference or f"R-{uuid.uuid4().hex[:10]}", "fine": fine, "amount_minor": minor,
            "currency": currency, "value_date": value_date.isoformat()}  # fmt: skip


def fine_of(sessions: sessionmaker[Session], number: str) -> Fine:
    with sessions() as session:
        found = session.scalars(select(Fine).where(Fine.number == number)).one()
        session.expunge(found)
        return found


def refunds(sessions: sessionmaker[Session]) -> list[tuple[str, int]]:
    with sessions() as session:
        return [
            (r.reason, r.amount_minor) for r in session.scalars(select(RefundCase).order_by(RefundCase.id))
        ]


@pytest.fixture
def paying(api: Api, device: Device) -> tuple[Api, bytes]:
    device.send(*(("protocol", kz_protocol(f"KZ-PAY-{i}")) for i in range(1, 6)))
    return api, add_provider(api.sessions)


def test_a_repeated_payment_gets_the_same_answer_and_is_applied_once(paying: tuple[Api, bytes]) -> None:
    api, key = paying
    b = body("KZ-PAY-1", 1081250, "BANK-0001")
    first = provider_post(api, "halyk", key, b)
    assert first.status_code == 201
    assert first.json() | {} == {"reference": "BANK-0001", "fine": "KZ-PAY-1", "outcome": "applied", "reason": "",
                                 "due_minor": 1081250, "applied_minor": 1081250, "refund_minor": 0, "repeated": False}  # fmt: skip
    again = provider_post(api, "halyk", key, b)
    assert again.status_code == 200 and again.json() == first.json() | {"repeated": True}
    f = fine_of(api.sessions, "KZ-PAY-1")
    assert (f.state, f.paid_minor, f.paid_ref) == ("paid_reduced", 1081250, "halyk:BANK-0001")
    assert count(api.sessions, ProviderPayment) == 1
    assert count(api.sessions, FineEvent, FineEvent.kind == "payment") == 1


def test_a_reference_used_again_for_another_payment_is_refused_and_changes_nothing(
    paying: tuple[Api, bytes],
) -> None:
    api, key = paying
    provider_post(api, "halyk", key, body("KZ-PAY-1", 1081250, "BANK-0002"))
    r = provider_post(api, "halyk", key, body("KZ-PAY-2", 1081250, "BANK-0002"))
    assert r.status_code == 409 and "already used" in r.json()["detail"]
    assert fine_of(api.sessions, "KZ-PAY-2").state == "issued"
    assert count(api.sessions, ProviderPayment) == 1


def test_wrong_amounts_open_refund_cases_and_are_never_accepted_silently(paying: tuple[Api, bytes]) -> None:
    api, key = paying
    under = provider_post(api, "halyk", key, body("KZ-PAY-1", 1081249)).json()
    assert (under["outcome"], under["reason"], under["refund_minor"]) == ("refund", "underpayment", 1081249)
    assert fine_of(api.sessions, "KZ-PAY-1").state == "issued"
    over = provider_post(api, "halyk", key, body("KZ-PAY-2", 2162500)).json()
    assert (over["outcome"], over["reason"], over["applied_minor"], over["refund_minor"]) == (
        "applied", "overpayment", 1081250, 1081250,
    )  # fmt: skip
    late = provider_post(api, "halyk", key, body("KZ-PAY-3", 1081250, value_date=date(2026, 3, 13))).json()
    assert (late["reason"], late["due_minor"]) == ("underpayment", 2162500)  # after the window, the full fine
    lari = provider_post(api, "halyk", key, body("KZ-PAY-4", 1081250, currency="GEL")).json()
    assert (lari["outcome"], lari["reason"]) == ("refund", "wrong_currency")
    assert refunds(api.sessions) == [
        ("underpayment", 1081249), ("overpayment", 1081250), ("underpayment", 1081250), ("wrong_currency", 1081250),
    ]  # fmt: skip


def test_a_second_payment_of_a_fine_paid_on_the_spot_is_refunded(api: Api, device: Device) -> None:
    pid = str(uuid.uuid4())
    device.send(("protocol", kz_protocol("KZ-SPOT-1", "paid")), ("payment", card_payment(pid, "KZ-SPOT-1")))
    key = add_provider(api.sessions)
    r = provider_post(api, "halyk", key, body("KZ-SPOT-1", 1081250)).json()
    assert (r["outcome"], r["reason"], r["refund_minor"]) == ("refund", "already_paid", 1081250)
    assert fine_of(api.sessions, "KZ-SPOT-1").paid_ref == f"device:{pid}"


def test_a_payment_for_a_fine_not_known_yet_is_applied_when_it_arrives_or_refunded_after_a_week(
    api: Api, device: Device, work: FineWork
) -> None:
    key = add_provider(api.sessions)
    early = provider_post(api, "halyk", key, body("KZ-LATE-1", 1081250)).json()
    never = provider_post(api, "halyk", key, body("KZ-NEVER-1", 1081250)).json()
    assert (early["outcome"], never["outcome"]) == ("unmatched", "unmatched")
    device.send(("protocol", kz_protocol("KZ-LATE-1")))  # the device was offline: its protocol comes later
    run(api.sessions, date(2026, 3, 4), work)
    assert fine_of(api.sessions, "KZ-LATE-1").state == "closed"
    assert refunds(api.sessions) == []
    run(api.sessions, date(2026, 3, 9), work)
    assert refunds(api.sessions) == [("unknown_fine", 1081250)]
    with api.sessions() as session:
        outcomes = dict(
            session.execute(select(ProviderPayment.fine_number, ProviderPayment.outcome)).tuples().all()
        )
    assert outcomes == {"KZ-LATE-1": "applied", "KZ-NEVER-1": "refund"}


def test_two_identical_requests_at_once_store_one_payment(paying: tuple[Api, bytes]) -> None:
    api, _key = paying
    req = ProviderPaymentIn.model_validate(body("KZ-PAY-5", 1081250, "BANK-RACE"))
    digest = hashlib.sha256(req.model_dump_json().encode()).hexdigest()
    barrier, answers = threading.Barrier(2), []

    def go() -> None:
        barrier.wait()
        answers.append(record_once(api.sessions, "halyk", req, digest, datetime(2026, 3, 2, 10, tzinfo=UTC)))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a.repeated for a in answers) == [False, True]
    assert {a.outcome for a in answers} == {"applied"}
    assert (
        count(api.sessions, ProviderPayment) == 1
        and count(api.sessions, FineEvent, FineEvent.kind == "payment") == 1
    )


def test_forged_stale_oversized_and_malformed_requests_are_refused_and_store_nothing(
    paying: tuple[Api, bytes],
) -> None:
    api, key = paying
    b = body("KZ-PAY-1", 1081250)
    assert provider_post(api, "halyk", b"x" * 32, b).status_code == 401  # another key
    assert provider_post(api, "kaspi", key, b).status_code == 401  # unknown provider
    stale = int((api.clock.now() - timedelta(minutes=6)).timestamp())
    r = provider_post(api, "halyk", key, b, stamp=stale)
    assert r.status_code == 401 and "X-Timestamp" in r.json()["detail"]
    assert api.client.post("/api/fines/payments", json=b).status_code == 401  # not signed at all
    assert provider_post(api, "halyk", key, b"{" + b" " * 20000 + b"}").status_code == 413
    bad = provider_post(api, "halyk", key, b"{not json")
    assert bad.status_code == 422
    for wrong in ({"amount_minor": -5}, {"amount_minor": "100"}, {"value_date": "yesterday"}, {"extra": 1},
                  {"fine": "../../etc"}, {"currency": "USD"}):  # fmt: skip
        r = provider_post(api, "halyk", key, b | wrong)
        assert r.status_code == 422, wrong
        assert r.json()["detail"]["errors"][0]["field"] in wrong
    assert count(api.sessions, ProviderPayment) == 0 and fine_of(api.sessions, "KZ-PAY-1").state == "issued"


# --- reconciliation -----------------------------------------------------------------------------------------


def statement(*lines: str) -> bytes:
    return ("reference,fine,amount_minor,currency,value_date\n" + "".join(f"{x}\n" for x in lines)).encode()


def test_a_statement_is_reconciled_with_every_kind_of_mismatch_and_the_report_kept(
    paying: tuple[Api, bytes],
) -> None:
    api, key = paying
    for ref, fine, minor in (
        ("A1", "KZ-PAY-1", 1081250),
        ("A2", "KZ-PAY-2", 1081250),
        ("A3", "KZ-PAY-3", 1081250),
    ):
        assert provider_post(api, "halyk", key, body(fine, minor, ref)).status_code == 201
    data = statement(
        "A1,KZ-PAY-1,1081250,KZT,2026-03-02",  # matched
        "A2,KZ-PAY-2,1081000,KZT,2026-03-02",  # mismatched amount
        "B9,KZ-PAY-4,1081250,KZT,2026-03-02",  # we never got it
        "A1,KZ-PAY-1,1081250,KZT,2026-03-02",  # listed twice
    )  # A3 is ours but missing in the statement
    with transaction(api.sessions) as session:
        summary = reconcile(session, "halyk", DAY0, "halyk-2026-03-02.csv", data, api.clock.now())
    assert {k: v for k, v in summary.items() if k != "report"} == {
        "provider": "halyk", "statement_date": "2026-03-02", "matched": 1, "mismatched": 1, "missing_ours": 1,
        "missing_statement": 1, "duplicates": 1,
    }  # fmt: skip
    with api.sessions() as session:
        items = {(i.kind, i.reference): i.detail for i in session.scalars(select(ReconciliationItem))}
    assert set(items) == {
        ("mismatched", "A2"),
        ("missing_ours", "B9"),
        ("missing_statement", "A3"),
        ("duplicate", "A1"),
    }
    assert "amount_minor: statement 1081000, ours 1081250" in items[("mismatched", "A2")]
    with transaction(api.sessions) as session:
        assert reconcile(session, "halyk", DAY0, "again.csv", data, api.clock.now()) == summary
    assert count(api.sessions, ReconciliationReport) == 1


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"ref,fine\n", "first line"),
        (statement("A1,KZ-PAY-1,10.5,KZT,2026-03-02"), "line 2: amount_minor"),
        (statement("A1,KZ-PAY-1,100,KZT,2026-03-02", "A2,KZ-PAY-2,100,KZT,02.03.2026"), "line 3: value_date"),
        (statement("A1,KZ-PAY-1,100,kzt,2026-03-02"), "line 2: currency"),
        (statement("A1,KZ-PAY-1,100,KZT"), "line 2: expected 5 fields"),
        (statement(",KZ-PAY-1,100,KZT,2026-03-02"), "line 2: reference"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_a_malformed_statement_is_refused_naming_the_line_and_stores_nothing(
    paying: tuple[Api, bytes], data: bytes, named: str
) -> None:
    api, _key = paying
    with pytest.raises(StatementError, match=named), transaction(api.sessions) as session:
        reconcile(session, "halyk", DAY0, "bad.csv", data, api.clock.now())
    assert count(api.sessions, ReconciliationReport) == 0
    with (
        pytest.raises(StatementError, match="no payment provider 'kaspi'"),
        transaction(api.sessions) as session,
    ):
        reconcile(session, "kaspi", DAY0, "x.csv", statement(), api.clock.now())
