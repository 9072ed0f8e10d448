"""A whole year of fines in each jurisdiction, on a fake clock, through every branch: from a synced protocol
(KZ) or a camera import (GE), through the daily run every day, SMS over SMPP to the test SMS centre with
delivery receipts, payments from a provider over the signed API, postal outcomes, appeals, the hand-over to
the bailiff and its acknowledgement, to a closed, cancelled, handed-over or time-barred fine."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.fines.enforcement_document import verify_document
from core.sync.signing import KeyRing, Verifier
from server.db.base import transaction
from server.db.fine_enforcement import EnforcementBatch, EnforcementDocument
from server.db.fine_notices import FineNotification, PostalNotice
from server.db.fine_payments import RefundCase
from server.db.fines import Fine, FineEvent
from server.fines import appeals
from server.fines.contacts import store_contacts
from server.fines.daily_run import FineWork, run_daily
from server.fines.notifier import NotifySettings, apply_receipt, send_due
from server.fines.postal import apply_outcome, parse_outcome_file
from server.fines.publication_list import publication_csv
from server.fines.smpp_gateway import SmppGateway, SmppReceiptListener, SmppTarget
from simulators.smsc import SmsCentre
from tests.fines.conftest import Api, Device, add_provider, card_payment, kz_protocol, make_iin, provider_post

START = date(2026, 3, 2)
END = date(2027, 3, 3)


class Year:
    """Lives the days from START to END: each day its events at 09:00 UTC, then the daily run and the sender."""

    def __init__(self, api: Api, work: FineWork, centre: SmsCentre) -> None:
        self.api, self.work, self.centre = api, work, centre
        self.events: dict[date, list[Callable[[], None]]] = {}
        self.gateway = SmppGateway(SmppTarget.from_url(centre.url), "POLICE", 5)
        self.listener = SmppReceiptListener(
            SmppTarget.from_url(centre.url), lambda r: apply_receipt(api.sessions, r, api.clock.now())
        )

    def on(self, day: date, action: Callable[[], None]) -> None:
        self.events.setdefault(day, []).append(action)

    def live(self) -> None:
        self.listener.start()
        assert self.listener.bound.wait(10)
        try:
            day = START
            while day <= END:
                target = datetime.combine(day, time(9, 0), tzinfo=UTC)
                self.api.clock.advance((target - self.api.clock.now()).total_seconds())
                for action in self.events.pop(day, []):
                    action()
                run_daily(self.api.sessions, day, self.work, self.api.clock.now)
                send_due(self.api.sessions, self.gateway, self.api.clock.now, NotifySettings())
                day += timedelta(days=1)
            assert not self.events
            deadline = datetime.now(UTC) + timedelta(seconds=15)
            while datetime.now(UTC) < deadline and self.undelivered():
                pass
        finally:
            self.listener.stop()
            self.gateway.close()

    def undelivered(self) -> list[str]:
        with self.api.sessions() as session:
            return list(
                session.scalars(select(FineNotification.status).where(FineNotification.status != "delivered"))
            )

    # --- what happened ------------------------------------------------------------------------------------

    def fine(self, number: str) -> Fine:
        with self.api.sessions() as session:
            found = session.scalars(select(Fine).where(Fine.number == number)).one()
            session.expunge(found)
            return found

    def steps(self, number: str) -> list[tuple[str, date]]:
        with self.api.sessions() as session:
            rows = session.execute(
                select(FineEvent.step, FineEvent.kind, FineEvent.happened_on)
                .join(Fine, Fine.id == FineEvent.fine_id)
                .where(Fine.number == number)
                .order_by(FineEvent.id)
            )
            return [(step if kind == "step" else kind, on) for step, kind, on in rows]

    def sms(self, number: str) -> list[tuple[str, str]]:
        with self.api.sessions() as session:
            rows = session.execute(
                select(FineNotification.step, FineNotification.status)
                .join(Fine, Fine.id == FineNotification.fine_id)
                .where(Fine.number == number)
                .order_by(FineNotification.id)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]


def pay(year: Year, key: bytes, number: str, minor: int, currency: str = "KZT") -> Callable[[], None]:
    def action() -> None:
        day = year.api.clock.now().date()
        body = {"reference": f"R-{uuid.uuid4().hex[:12]}", "fine": number, "amount_minor": minor,
                "currency": currency, "value_date": day.isoformat()}  # fmt: skip
        r = provider_post(year.api, "halyk", key, body)
        assert r.status_code == 201, r.text
        year.paid.append((number, r.json()))  # type: ignore[attr-defined]

    return action


def appeal(year: Year, number: str, how: str) -> Callable[[], None]:
    def action() -> None:
        now = year.api.clock.now()
        with transaction(year.api.sessions) as session:
            if how == "open":
                appeals.open_appeal(session, number, now.date(), "ERAP-APPEAL-1", now)
            else:
                appeals.close_appeal(session, number, now.date(), how == "upheld", "decision", now)

    return action


@pytest.fixture
def centre() -> Any:
    with SmsCentre() as c:
        yield c


def test_a_year_in_kazakhstan_through_every_branch(
    api: Api, device: Device, work: FineWork, centre: SmsCentre
) -> None:
    numbers = [f"KZ-Y-{i}" for i in range(1, 10)]
    iins = {n: make_iin(i) for i, n in enumerate(numbers)}
    with transaction(api.sessions) as session:
        store_contacts(
            session, [(iins[n], f"+7701000{i:04d}") for i, n in enumerate(numbers)], "bmg", api.clock.now()
        )
    # the device syncs its protocols of the day; K8 was paid on the spot
    device.send(*(("protocol", kz_protocol(n, iin=iins[n])) for n in numbers))
    pid = str(uuid.uuid4())
    device.send(
        ("payment", card_payment(pid, "KZ-Y-8")), ("protocol", kz_protocol("KZ-Y-8", "paid", iins["KZ-Y-8"]))
    )
    key = add_provider(api.sessions)
    year = Year(api, work, centre)
    year.paid = []  # type: ignore[attr-defined]
    year.on(date(2026, 3, 5), pay(year, key, "KZ-Y-1", 1081250))  # in the discount window
    year.on(date(2026, 3, 20), pay(year, key, "KZ-Y-2", 2162500))  # late, before the demand
    year.on(date(2026, 4, 23), pay(year, key, "KZ-Y-3", 2162500))  # after the demand
    year.on(date(2026, 5, 5), pay(year, key, "KZ-Y-4", 2162500))  # after the hand-over
    year.on(date(2026, 3, 5), appeal(year, "KZ-Y-6", "open"))
    year.on(date(2026, 3, 30), appeal(year, "KZ-Y-6", "rejected"))
    year.on(date(2026, 3, 10), appeal(year, "KZ-Y-7", "open"))
    year.on(date(2026, 3, 20), appeal(year, "KZ-Y-7", "upheld"))
    year.on(date(2026, 3, 20), pay(year, key, "KZ-Y-9", 1081250))  # the reduced amount, too late: refunded
    year.on(date(2026, 3, 25), pay(year, key, "KZ-Y-9", 2162500))
    acks: list[Any] = []

    def bailiff_acks() -> None:
        headers = api.key("bailiff")
        with api.sessions() as session:
            batches = list(session.scalars(select(EnforcementBatch.id)))
        for b in batches:
            got = api.client.get(f"/api/fines/bailiff/batches/{b}", headers=headers).json()
            acks.append(got)
            r = api.client.post(
                f"/api/fines/bailiff/batches/{b}/ack", json={"reference": f"ЧСИ-{b}"}, headers=headers
            )
            assert r.status_code == 200

    year.on(date(2026, 6, 1), bailiff_acks)
    year.live()

    assert {n: year.fine(n).state for n in numbers} == {
        "KZ-Y-1": "closed", "KZ-Y-2": "closed", "KZ-Y-3": "closed", "KZ-Y-4": "closed", "KZ-Y-5": "handed_over",
        "KZ-Y-6": "handed_over", "KZ-Y-7": "cancelled", "KZ-Y-8": "closed", "KZ-Y-9": "closed",
    }  # fmt: skip
    assert year.fine("KZ-Y-1").paid_minor == 1081250 and year.fine("KZ-Y-8").paid_ref == f"device:{pid}"
    assert year.steps("KZ-Y-3") == [
        ("created", START), ("discount", START), ("discount_end", date(2026, 3, 13)), ("demand", date(2026, 4, 21)),
        ("payment", date(2026, 4, 23)), ("close", date(2026, 4, 23)),
    ]  # fmt: skip
    assert [s for s in year.steps("KZ-Y-4") if s[0] in ("handover", "recall", "close")] == [
        ("handover", date(2026, 4, 27)), ("recall", date(2026, 5, 5)), ("close", date(2026, 5, 5)),
    ]  # fmt: skip
    paused = (date(2026, 3, 30) - date(2026, 3, 5)).days
    k6 = dict(year.steps("KZ-Y-6"))
    assert k6["demand"] == date(2026, 4, 21) + timedelta(days=paused)
    assert k6["handover"] == k6["demand"] + timedelta(days=6)
    assert "demand" not in dict(year.steps("KZ-Y-2")) and "demand" not in dict(year.steps("KZ-Y-7"))
    # the demands went out over SMPP, in Kazakh then Russian, and were delivered
    assert {n: year.sms(n) for n in numbers if year.sms(n)} == {
        n: [("demand", "delivered")] for n in ("KZ-Y-3", "KZ-Y-4", "KZ-Y-5", "KZ-Y-6")
    }
    texts = dict(centre.texts())
    assert len(texts) == 4
    assert all("5 күнтізбелік күн" in t and "5 календарных дней" in t for t in texts.values())
    # refunds: the late reduced payment only
    with api.sessions() as session:
        refunds = [(c.reason, c.amount_minor) for c in session.scalars(select(RefundCase))]
    assert refunds == [("underpayment", 1081250)]
    # hand-over: one signed document per fine, a recall for the one paid after, batches acknowledged
    keys = KeyRing([Verifier(work.signer.public_raw())])
    with api.sessions() as session:
        docs = session.scalars(select(EnforcementDocument).order_by(EnforcementDocument.id)).all()
        batches = session.scalars(select(EnforcementBatch).order_by(EnforcementBatch.id)).all()
    by_fine = {(verify_document(keys, d.kid, d.body, d.sig).fine_number, d.kind) for d in docs}
    assert by_fine == {
        ("KZ-Y-4", "enforcement"),
        ("KZ-Y-5", "enforcement"),
        ("KZ-Y-4", "recall"),
        ("KZ-Y-6", "enforcement"),
    }
    assert [(b.made_on, b.documents) for b in batches] == [
        (date(2026, 4, 27), 2), (date(2026, 5, 5), 1), (date(2026, 5, 22), 1),
    ]  # fmt: skip
    assert [b.ack_reference for b in batches] == ["ЧСИ-1", "ЧСИ-2", "ЧСИ-3"] and all(
        b.acknowledged_at for b in batches
    )
    assert len(acks[0]["documents"]) == 2 and acks[0]["signature"]["algorithm"] == "Ed25519"


def test_a_year_in_georgia_through_every_branch(api: Api, work: FineWork, centre: SmsCentre) -> None:
    numbers = [f"GE-Y-{i}" for i in range(1, 9)]
    fines = [
        {"number": n, "source": "camera", "jurisdiction": "GE", "article": "speed-40",
         "offence_at": "2026-03-02T07:15:00+00:00", "person_id": f"0102405060{i}", "plate": f"AA-00{i}-BB",
         "phone": f"+99559900000{i}"}
        for i, n in enumerate(numbers, start=1)
    ]  # fmt: skip
    r = api.client.post("/api/fines/import", json={"fines": fines}, headers=api.key("import"))
    assert {x["outcome"] for x in r.json()["results"]} == {"created"}
    key = add_provider(api.sessions)
    year = Year(api, work, centre)
    year.paid = []  # type: ignore[attr-defined]
    post = api.key("post")

    def outcome(number: str, step: str, what: str, via: str = "api") -> Callable[[], None]:
        def action() -> None:
            day = api.clock.now().date().isoformat()
            if via == "api":
                body = {"outcomes": [{"tracking": f"{number}/{step}", "outcome": what, "on": day}]}
                got = api.client.post("/api/fines/notices/outcomes", json=body, headers=post).json()
                assert got["results"][0]["result"] == "applied", got
            else:
                data = f"tracking,outcome,date\n{number}/{step},{what},{day}\n".encode()
                with transaction(api.sessions) as session:
                    for o in parse_outcome_file(data):
                        assert apply_outcome(session, o, "file", api.clock.now()).result == "applied"

        return action

    year.on(date(2026, 3, 10), pay(year, key, "GE-Y-1", 24000, "GEL"))
    year.on(date(2026, 3, 16), outcome("GE-Y-2", "notice1", "delivered"))
    year.on(date(2026, 4, 1), pay(year, key, "GE-Y-2", 30000, "GEL"))
    year.on(date(2026, 3, 16), outcome("GE-Y-3", "notice1", "delivered"))
    year.on(date(2026, 3, 20), outcome("GE-Y-4", "notice1", "undelivered", via="file"))
    year.on(date(2026, 3, 30), outcome("GE-Y-4", "notice2", "undelivered", via="file"))
    year.on(date(2026, 6, 5), pay(year, key, "GE-Y-4", 60000, "GEL"))
    year.on(date(2026, 3, 5), appeal(year, "GE-Y-6", "open"))
    year.on(date(2026, 3, 25), appeal(year, "GE-Y-6", "rejected"))
    year.on(
        date(2026, 3, 31), pay(year, key, "GE-Y-6", 24000, "GEL")
    )  # the window moved by the 20 paused days
    year.on(date(2026, 3, 5), appeal(year, "GE-Y-7", "open"))
    year.on(date(2026, 3, 15), appeal(year, "GE-Y-7", "upheld"))
    year.on(date(2026, 3, 16), outcome("GE-Y-8", "notice1", "delivered"))
    year.on(date(2026, 6, 1), pay(year, key, "GE-Y-8", 60000, "GEL"))
    year.live()

    assert {n: year.fine(n).state for n in numbers} == {
        "GE-Y-1": "closed", "GE-Y-2": "closed", "GE-Y-3": "time_barred", "GE-Y-4": "closed", "GE-Y-5": "time_barred",
        "GE-Y-6": "closed", "GE-Y-7": "cancelled", "GE-Y-8": "closed",
    }  # fmt: skip
    assert year.fine("GE-Y-1").paid_minor == 24000 and year.fine("GE-Y-6").paid_minor == 24000
    g3 = dict(year.steps("GE-Y-3"))
    assert (g3["overdue"], g3["surcharge"], g3["enforcement"], g3["time_bar"]) == (
        date(2026, 4, 16), date(2026, 4, 16), date(2026, 5, 17), date(2027, 3, 2),
    )  # fmt: skip
    g4 = year.steps("GE-Y-4")
    assert [s for s, _ in g4 if s not in ("created", "delivery", "payment")] == [
        "sms_issued", "notice1", "notice2", "publish", "deemed_delivery", "overdue", "surcharge", "close",
    ]  # fmt: skip
    assert dict(g4)["deemed_delivery"] == dict(g4)["publish"] + timedelta(days=30)
    g5 = year.steps("GE-Y-5")
    assert [s for s, _ in g5 if s == "notice_timeout"] == ["notice_timeout", "notice_timeout"]
    assert dict(g5)["publish"] == date(2026, 5, 12) and dict(g5)["enforcement"] == date(2026, 8, 12)
    assert [s for s, _ in year.steps("GE-Y-8")][-2:] == ["recall", "close"]
    with api.sessions() as session:
        notices = [(n.step, n.status, n.outcome_source) for n in session.scalars(
            select(PostalNotice).join(Fine, Fine.id == PostalNotice.fine_id).where(Fine.number == "GE-Y-5")
            .order_by(PostalNotice.id))]  # fmt: skip
        listed = list(csv.DictReader(io.StringIO(publication_csv(session))))
    assert notices == [("notice1", "undelivered", "timeout"), ("notice2", "undelivered", "timeout")]
    assert [(p["fine"], p["published_on"], p["deemed_on"]) for p in listed] == [
        ("GE-Y-4", "2026-03-30", "2026-04-29"), ("GE-Y-5", "2026-05-12", "2026-06-11"),
    ]  # fmt: skip
    assert year.sms("GE-Y-3") == [("sms_issued", "delivered"), ("surcharge", "delivered")]
    assert year.sms("GE-Y-7") == [("sms_issued", "delivered")]
    texts = [t for _to, t in centre.texts()]
    assert len(texts) == 8 + 4 and all(any("\u10d0" <= ch <= "\u10ff" for ch in t) for t in texts)
