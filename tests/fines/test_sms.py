"""The fine notices' SMS: through SMPP (smpplib) to the test SMS centre on loopback, in UCS-2 parts, with
delivery receipts; an SMS centre that fails, is slow, answers twice, stays silent or is down; a sender stopped
mid-send; the log gateway; phones from the contact registry; and receipts read from hostile bytes."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from server.db.base import transaction
from server.db.fine_notices import FineNotification, SmsPart
from server.fines.contacts import ContactError, ImportedContacts, parse_contacts, store_contacts
from server.fines.daily_run import FineWork
from server.fines.notifier import NotifySettings, apply_receipt, send_due
from server.fines.smpp_gateway import SmppGateway, SmppReceiptListener, SmppTarget
from server.fines.smpp_receipts import Receipt, id_forms, parse_receipt
from server.fines.sms_gateway import HttpGateway, LogGateway, OutgoingSms, SendResult
from simulators.smsc import SmsCentre
from tests.fines.conftest import T0, georgian_fines

SETTINGS = NotifySettings(max_attempts=3, retry_s=60, retry_max_s=600, stale_after_s=300)


def notifications(sessions: sessionmaker[Session]) -> list[FineNotification]:
    with sessions() as session:
        rows = list(session.scalars(select(FineNotification).order_by(FineNotification.id)))
        session.expunge_all()
        return rows


def wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def smsc() -> SmsCentre:
    centre = SmsCentre().start()
    yield centre  # type: ignore[misc]
    centre.stop()


def gateway(centre: SmsCentre, timeout_s: float = 5.0) -> SmppGateway:
    return SmppGateway(SmppTarget.from_url(centre.url), "POLICE", timeout_s)


def test_notices_go_out_over_smpp_in_ucs2_parts_and_receipts_mark_them_delivered(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock, smsc: SmsCentre
) -> None:
    georgian_fines(server_sessions, work, 2)
    listener = SmppReceiptListener(
        SmppTarget.from_url(smsc.url), lambda r: apply_receipt(server_sessions, r, clock.now())
    )
    listener.start()
    try:
        assert listener.bound.wait(10)
        gw = gateway(smsc)
        report = send_due(server_sessions, gw, clock.now, SETTINGS)
        gw.close()
        assert report.sent == 2
        sent = notifications(server_sessions)
        assert [(n.status, n.attempts) for n in sent] == [("sent", 1), ("sent", 1)]
        texts = dict(smsc.texts())
        assert texts == {n.phone.lstrip("+"): n.text for n in sent if n.phone}
        assert {m.data_coding for m in smsc.messages} == {8}  # UCS-2
        assert len(smsc.messages) == 2 * 2 and all(m.udh for m in smsc.messages)  # each text in 2 parts
        assert all(m.registered_delivery == 1 and m.source == "POLICE" for m in smsc.messages)
        wait(lambda: {n.status for n in notifications(server_sessions)} == {"delivered"})
    finally:
        listener.stop()
    with server_sessions() as session:
        parts = session.scalars(select(SmsPart)).all()
        assert sorted(p.provider_id for p in parts) == sorted(m.message_id for m in smsc.messages)
        assert {p.status for p in parts} == {"delivered"}


def test_a_receipt_with_its_id_only_in_the_text_is_matched_and_a_failed_part_marks_the_sms_undelivered(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    with SmsCentre(receipts=False, receipt_tlv=False) as centre:
        georgian_fines(server_sessions, work, 1)
        listener = SmppReceiptListener(
            SmppTarget.from_url(centre.url), lambda r: apply_receipt(server_sessions, r, clock.now())
        )
        listener.start()
        try:
            assert listener.bound.wait(10)
            send_due(server_sessions, gateway(centre), clock.now, SETTINGS)
            ids = [m.message_id for m in centre.messages]
            centre.receipt(ids[0], "DELIVRD")
            centre.receipt(ids[1], "UNDELIV")
            wait(lambda: notifications(server_sessions)[0].status == "undelivered")
        finally:
            listener.stop()


def test_a_failing_sms_centre_gets_each_notice_again_after_a_backoff_until_the_last_attempt(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    georgian_fines(server_sessions, work, 1)
    with SmsCentre(mode="fail") as centre:
        gw = gateway(centre)
        send_due(server_sessions, gw, clock.now, SETTINGS)
        n = notifications(server_sessions)[0]
        assert (n.status, n.attempts, n.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=60))
        assert "0x08" in n.last_error
        send_due(server_sessions, gw, clock.now, SETTINGS)  # not due yet: nothing is tried
        assert centre.refused == 1
        clock.advance(60)
        send_due(server_sessions, gw, clock.now, SETTINGS)
        assert notifications(server_sessions)[0].next_attempt_at == clock.now() + timedelta(seconds=120)
        clock.advance(120)
        send_due(server_sessions, gw, clock.now, SETTINGS)
        n = notifications(server_sessions)[0]
        assert (n.status, n.attempts, centre.refused, len(centre.messages)) == ("failed", 3, 3, 0)
        clock.advance(3600)
        send_due(server_sessions, gw, clock.now, SETTINGS)
        assert centre.refused == 3


def test_a_slow_sms_centre_within_the_timeout_is_waited_for(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    georgian_fines(server_sessions, work, 1)
    with SmsCentre(mode="slow", delay_s=0.3, receipts=False) as centre:
        assert send_due(server_sessions, gateway(centre, timeout_s=5), clock.now, SETTINGS).sent == 1
    assert notifications(server_sessions)[0].status == "sent"


def test_an_sms_centre_that_never_answers_leaves_the_notice_uncertain_and_never_sends_it_twice(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    georgian_fines(server_sessions, work, 1)
    with SmsCentre(mode="silent") as centre:
        gw = gateway(centre, timeout_s=0.5)
        report = send_due(server_sessions, gw, clock.now, SETTINGS)
        assert (report.sent, report.uncertain) == (0, 1)
        n = notifications(server_sessions)[0]
        assert n.status == "uncertain" and "no answer" in n.last_error
        clock.advance(86400)
        send_due(server_sessions, gw, clock.now, SETTINGS)
        assert len(centre.messages) == 1  # the first part reached the centre once, and nothing ever again


def test_an_sms_centre_answering_twice_does_not_mix_up_message_ids(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    georgian_fines(server_sessions, work, 4)
    with SmsCentre(mode="twice", receipts=False) as centre:
        assert send_due(server_sessions, gateway(centre), clock.now, SETTINGS).sent == 4
        first_part = {m.destination: m.message_id for m in centre.messages if m.udh and m.udh[2] == 1}
    sent = notifications(server_sessions)
    assert {n.phone.lstrip("+"): n.provider_id for n in sent if n.phone} == first_part
    assert len(centre.messages) == 4 * 2


def test_an_sms_centre_that_is_down_is_tried_again_and_gets_the_notice_once_it_is_up(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    georgian_fines(server_sessions, work, 1)
    centre = SmsCentre(receipts=False)
    port = centre.port
    centre.stop()  # nothing listens there now
    gw = SmppGateway(SmppTarget("127.0.0.1", port, "patrolkit", "secret"), "POLICE", 2)
    send_due(server_sessions, gw, clock.now, SETTINGS)
    n = notifications(server_sessions)[0]
    assert (n.status, n.attempts) == ("pending", 1) and "bind" in n.last_error
    with SmsCentre(port=port, receipts=False) as up:
        clock.advance(60)
        send_due(server_sessions, gw, clock.now, SETTINGS)
        assert notifications(server_sessions)[0].status == "sent" and len(up.texts()) == 1


def test_a_sender_stopped_mid_send_leaves_the_notice_uncertain_over_smpp_but_resends_to_the_log(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock, smsc: SmsCentre, tmp_path: Path
) -> None:
    georgian_fines(server_sessions, work, 2)
    with transaction(
        server_sessions
    ) as session:  # as a sender killed between claiming and recording leaves them
        session.execute(update(FineNotification).values(status="sending", claimed_at=clock.now(), attempts=1))
    send_due(server_sessions, gateway(smsc), clock.now, SETTINGS)
    assert [n.status for n in notifications(server_sessions)] == ["sending", "sending"]  # not stale yet
    clock.advance(301)
    send_due(server_sessions, gateway(smsc), clock.now, SETTINGS)
    assert [n.status for n in notifications(server_sessions)] == ["uncertain", "uncertain"]
    assert smsc.messages == []
    with transaction(server_sessions) as session:
        session.execute(
            update(FineNotification).values(status="sending", claimed_at=clock.now() - timedelta(hours=1))
        )
    log_gw = LogGateway(tmp_path / "sms.log")
    assert send_due(server_sessions, log_gw, clock.now, SETTINGS).sent == 2
    lines = [json.loads(x) for x in (tmp_path / "sms.log").read_text(encoding="utf-8").splitlines()]
    assert [x["reference"] for x in lines] == [f"n{n.id}" for n in notifications(server_sessions)]
    assert {n.provider_id for n in notifications(server_sessions)} == {
        x["reference"].join(("log:", "")) for x in lines
    }


def test_sending_twice_sends_nothing_twice(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock, smsc: SmsCentre
) -> None:
    georgian_fines(server_sessions, work, 3)
    gw = gateway(smsc)
    assert send_due(server_sessions, gw, clock.now, SETTINGS).sent == 3
    clock.advance(86400)
    assert send_due(server_sessions, gw, clock.now, SETTINGS).sent == 0
    assert len(smsc.texts()) == 3


def test_without_a_phone_the_notice_is_kept_as_no_phone_and_the_contact_registry_fills_it(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    with transaction(server_sessions) as session:
        store_contacts(
            session, parse_contacts(b"person_id,phone\n10000000001,+995 599 11-22-33\n"), "bmg", T0
        )
    georgian_fines(server_sessions, work, 2, phone=None)
    sent = notifications(server_sessions)
    assert [(n.status, n.phone) for n in sent] == [("no_phone", None), ("pending", "+995599112233")]
    with server_sessions() as session:
        assert ImportedContacts().phones(session, ["10000000001", "999"]) == {"10000000001": "+995599112233"}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"iin,phone\n", "first line"),
        (b"person_id,phone\n123,+77011234567\n", "line 2: person_id"),
        (b"person_id,phone\n850101300124,call me\n", "line 2: phone"),
        (b"person_id,phone\n850101300124\n", "line 2: expected 2 fields"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_contacts_file_is_refused_naming_the_line(data: bytes, named: str) -> None:
    with pytest.raises(ContactError, match=named):
        parse_contacts(data)


def test_receipts_are_read_from_the_tlv_or_the_text() -> None:
    text = b"id:1A2B03 sub:001 dlvrd:001 submit date:2603021400 done date:2603021401 stat:DELIVRD err:000 text:Hi"
    assert parse_receipt(None, text) == Receipt("1A2B03", "DELIVRD", "000")
    assert parse_receipt(b"XYZ\x00", text) == Receipt("XYZ", "DELIVRD", "000")
    assert parse_receipt("", b"id:77 stat:UNDELIV err:012").delivered is False  # type: ignore[union-attr]
    assert parse_receipt("", b"id:77 stat:ENROUTE").delivered is None  # type: ignore[union-attr]
    assert parse_receipt(None, b"stat:DELIVRD") is None
    assert parse_receipt(None, b"id:77") is None
    assert "1715971" in id_forms("1A2F03") and "1A2F03" in id_forms("1715971")


@given(st.one_of(st.none(), st.binary(max_size=80), st.text(max_size=80)), st.binary(max_size=400))
def test_any_bytes_give_a_receipt_or_none_and_never_raise(tlv: object, text: bytes) -> None:
    found = parse_receipt(tlv, text)
    assert found is None or (found.message_id and found.stat.isalpha())


@given(st.binary(max_size=300))
def test_a_mutated_receipt_gives_a_receipt_or_none(noise: bytes) -> None:
    base = bytearray(
        b"id:1A2B03 sub:001 dlvrd:001 submit date:2603021400 done date:2603021401 stat:DELIVRD err:000"
    )
    for i, b in enumerate(noise[: len(base)]):
        if b % 7 == 0:
            base[i] = b
    found = parse_receipt(None, bytes(base))
    assert found is None or isinstance(found.delivered, bool | None)


def test_a_receipt_that_overtakes_the_record_of_its_submit_is_applied_when_the_part_is_recorded(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    georgian_fines(server_sessions, work, 1)
    with SmsCentre(receipts=False) as centre:  # it numbers messages 1A2B00, 1A2B01, … as it takes them
        for part in ("1A2B00", "1A2B01"):
            assert apply_receipt(server_sessions, Receipt(part, "DELIVRD", "000"), clock.now()) is False
        send_due(server_sessions, gateway(centre), clock.now, SETTINGS)
        assert [m.message_id for m in centre.messages] == ["1A2B00", "1A2B01"]
    assert notifications(server_sessions)[0].status == "delivered"


def test_a_receipt_that_comes_while_its_submit_is_being_recorded_is_applied(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    """The receipt's transaction and the record's run at once: neither may commit unseen by the other."""
    georgian_fines(server_sessions, work, 1)
    sent = threading.Event()
    receipts: list[bool] = []

    def receive() -> None:
        for part in ("1A2B00", "1A2B01"):
            receipts.append(apply_receipt(server_sessions, Receipt(part, "DELIVRD", "000"), clock.now()))

    def meet_the_record(session: Session) -> None:
        if sent.is_set() and threading.current_thread() is main and not receivers:
            receivers.append(threading.Thread(target=receive))
            receivers[0].start()
            receivers[0].join(0.5)  # the record's rows are written and not yet committed

    main, receivers = threading.current_thread(), list[threading.Thread]()
    with SmsCentre(receipts=False) as centre:
        smpp = gateway(centre)
        plain_send = smpp.send

        def send(messages: list[OutgoingSms]) -> list[SendResult]:
            try:
                return plain_send(messages)
            finally:
                sent.set()

        smpp.send = send  # type: ignore[method-assign]
        event.listen(server_sessions, "before_commit", meet_the_record)
        try:
            send_due(server_sessions, smpp, clock.now, SETTINGS)
        finally:
            event.remove(server_sessions, "before_commit", meet_the_record)
            smpp.close()
        receivers[0].join(10)
    assert len(receipts) == 2
    assert notifications(server_sessions)[0].status == "delivered"


class _Provider(BaseHTTPRequestHandler):
    """An HTTP SMS provider: takes ``{"to","text","reference"}``, answers ``{"id"}``; drops repeated references
    (so the gateway may send again after a cut-off); ``mode`` 503 refuses, ``hang`` never answers."""

    mode = "ok"
    seen: dict[str, str] = {}
    calls: list[dict[str, str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
            self.end_headers()
            return
        if self.mode == "503":
            self.send_response(503)
            self.end_headers()
            return
        if self.mode == "hang":
            time.sleep(1.5)
            return
        provider_id = type(self).seen.setdefault(body["reference"], f"h{len(type(self).seen) + 1}")
        data = json.dumps({"id": provider_id}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_a: object) -> None:
        pass


def test_the_http_gateway_sends_retries_a_refusal_and_resends_a_cut_off_send_once(
    server_sessions: sessionmaker[Session], work: FineWork, clock: FakeClock
) -> None:
    _Provider.seen, _Provider.calls, _Provider.mode = {}, [], "503"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/sms"
        georgian_fines(server_sessions, work, 1)
        gw = HttpGateway(url, "t0ken", idempotent=True, timeout_s=0.5)
        assert send_due(server_sessions, gw, clock.now, SETTINGS).retry == 1
        assert "HTTP 503" in notifications(server_sessions)[0].last_error
        _Provider.mode = "hang"
        clock.advance(60)
        assert (
            send_due(server_sessions, gw, clock.now, SETTINGS).retry == 1
        )  # cut off: sent again later (idempotent)
        _Provider.mode = "ok"
        clock.advance(120)
        assert send_due(server_sessions, gw, clock.now, SETTINGS).sent == 1
        n = notifications(server_sessions)[0]
        assert (n.status, n.provider_id, n.attempts) == ("sent", "h1", 3)
        assert {c["reference"] for c in _Provider.calls} == {f"n{n.id}"} and len(_Provider.seen) == 1
        gw.close()
    finally:
        httpd.shutdown()
