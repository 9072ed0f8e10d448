"""Protocol search and the stop page: what a supervisor sees of a stop (offence, fine, payment with the
masked card number only, receipts in words, own-card check, bookmarks, times in local time with the offset)
and which footage is selected for it, with every moment of the window explained."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.protocols import Protocol
from server.db.supervisors import AccessAudit
from server.review.footage import FootageSegment, HoleKind, Interval, Neighbour, classify_holes, uncovered

from .conftest import NUMBER, T0, Review, add_protocol


def _audit_rows(sessions: sessionmaker[Session]) -> list[AccessAudit]:
    with sessions() as session:
        return list(session.scalars(select(AccessAudit).order_by(AccessAudit.id)))


def _found(html: str) -> list[str]:
    return re.findall(r'<a class="protocol" href="/review/protocols/[^"]+">([^<]+)</a>', html)


def test_anonymous_pages_redirect_to_the_login(review: Review) -> None:
    for url in ("/review/protocols", f"/review/protocols/{NUMBER}", "/review/protocols?number=KZ"):
        response = review.client.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/review/login")
    assert _audit_rows(review.sessions) == []


def test_search_by_number_plate_badge_and_date(review: Review) -> None:
    assert review.login() == 303
    get = review.client.get
    assert _found(get("/review/protocols", params={"number": "kz-2026-000777"}).text) == [NUMBER]
    assert sorted(_found(get("/review/protocols", params={"number": "KZ-2026"}).text)) == [
        NUMBER,
        "KZ-2026-000778",
    ]
    assert _found(get("/review/protocols", params={"plate": "777 xyz 02"}).text) == ["KZ-2026-000778"]
    assert sorted(_found(get("/review/protocols", params={"badge": "B-1001"}).text)) == [
        NUMBER,
        "KZ-2026-000778",
    ]
    assert _found(get("/review/protocols", params={"badge": "B-9999"}).text) == []
    assert _found(get("/review/protocols", params={"date": "2026-03-03"}).text) == ["KZ-2026-000778"]
    both = get("/review/protocols", params={"badge": "B-1001", "date": "2026-03-02"})
    assert _found(both.text) == [NUMBER]
    assert [a.action for a in _audit_rows(review.sessions)] == ["search"] * 7


def test_injection_attempts_and_bad_search_fields_get_a_400_naming_the_field(review: Review) -> None:
    assert review.login() == 303
    for number in ("' OR 1=1 --", "KZ%", "KZ_2026"):  # any text may be a synced number: matched as text
        found = review.client.get("/review/protocols", params={"number": number})
        assert found.status_code == 200 and _found(found.text) == [], number
    for params, word in [
        ({"number": "K" * 33}, "protocol number"),
        ({"plate": "1'; DROP TABLE protocol;--"}, "plate"),
        ({"badge": "B-1001' OR '1'='1"}, "badge"),
        ({"date": "2026-13-45"}, "date"),
        ({"date": "yesterday"}, "date"),
        ({"sort": "number"}, "unknown field &#39;sort&#39;"),
    ]:
        response = review.client.get("/review/protocols", params=params)
        assert response.status_code == 400 and word in response.text, params
    twice = review.client.get("/review/protocols?number=KZ&number=X")
    assert twice.status_code == 400 and "twice" in twice.text
    huge = review.client.get("/review/protocols", params={"number": "K" * 5000})
    assert huge.status_code == 414
    assert review.client.get(f"/review/protocols/{NUMBER}?" + "x" * 5000).status_code == 414
    assert [a.action for a in _audit_rows(review.sessions)] == ["search"] * 3, "refused input leaves no trace"
    with review.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Protocol)) == 2


def test_unknown_or_malformed_protocol_is_a_clear_4xx_and_writes_no_audit(review: Review) -> None:
    assert review.login() == 303
    unknown = review.client.get("/review/protocols/KZ-2026-999999")
    assert unknown.status_code == 404 and "KZ-2026-999999" in unknown.text
    quoted = review.client.get("/review/protocols/%27%20OR%201%3D1")
    assert quoted.status_code == 404 and "&#39; OR 1=1" in quoted.text
    bad = review.client.get("/review/protocols/" + "9" * 300)
    assert bad.status_code == 400 and "protocol number" in bad.text
    assert _audit_rows(review.sessions) == []


def test_protocol_page_shows_offence_fine_payment_receipts_and_own_card_check(review: Review) -> None:
    assert review.login() == 303
    page = review.client.get(f"/review/protocols/{NUMBER}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "592.1",
        "Превышение скорости",
        "Жанболатов Арман",
        "123ABC01",
        "B-1001 Сейтқали Ержан",
        "21 625.00 ₸",  # fine
        "10 812.50 ₸",  # reduced fine
        "2026-03-11",  # reduced until
        "оплачен / paid",
        "2026-03-02 14:10:00 +05:00",  # the offence time, local with the offset
        "Mastercard •••• 4111",
        "ZHANBOLATOV/ARMAN",
        "A1B2C3",
        "transliteration matches",
        "экз. 1, водителю / copy 1, the driver&#39;s — напечатан / printed",
        "экз. 2, к протоколу / copy 2, for the protocol — напечатан / printed",
    ):
        assert expected in text, expected
    assert "541333" not in text, "only the last four digits of the card are shown"
    assert "2812" not in text, "card expiry is not shown"
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_footage_is_one_window_over_the_bookmark_with_margin_and_every_moment_is_explained(review: Review) -> None:
    assert review.login() == 303
    text = review.client.get(f"/review/protocols/{NUMBER}").text
    shown = [int(s) for s in re.findall(r'id="seg-DEV-REV1-(\d+)"', text)]
    assert shown == [11, 12, 13, 14, 15], "09:08:00-09:14:30 = bookmark 09:10:00-09:12:30 ± 2 min"
    assert text.count('class="footage"') == 1 and text.count("<video") == 1, "one player for the stop"
    playlist = re.search(r'data-playlist="([^"]+)"', text)
    assert playlist is not None and "/review/api/footage/DEV-REV1.m3u8?" in playlist.group(1)
    section = {seq: text.split(f'id="seg-DEV-REV1-{seq}"')[1].split("</tr>")[0] for seq in shown}
    assert "upload in progress" in section[12]
    assert all("not uploaded yet" in section[s] for s in (13, 14, 15))
    assert (
        "recording gap 2026-03-02 14:11:00 +05:00 – 2026-03-02 14:11:20 +05:00: "
        "<strong>потеря питания / power loss</strong>" in text
    ), "times are local (Asia/Almaty) with the offset"
    assert 'class="tl-gap" data-start="' in text, "the gap is drawn on the timeline"
    assert "class=\"tl-hole " not in text and "class=\"hole " not in text, "segments and the gap explain it all"


def test_protocol_without_bookmarks_shows_the_footage_around_the_offence_time(review: Review) -> None:
    add_protocol(review.sessions, "KZ-2026-000900", T0 + timedelta(minutes=6, seconds=30))
    assert review.login() == 303
    text = review.client.get("/review/protocols/KZ-2026-000900").text
    assert "around the offence time" in text
    shown = [int(s) for s in re.findall(r'id="seg-DEV-REV1-(\d+)"', text)]
    assert shown == [8, 9, 10, 11, 12, 13, 14, 15]  # 09:01:30-09:16:30
    holes = re.findall(r'<li class="hole hole-(\w+)">([^<]+)<strong>([^<]+)</strong>', text)
    assert [(kind, when.strip(" :"), words) for kind, when, words in holes] == [
        ("not_started", "2026-03-02 14:01:30 +05:00 – 2026-03-02 14:04:00 +05:00", "регистратор ещё не был запущен / recorder not started yet"),
        ("not_synced", "2026-03-02 14:15:20 +05:00 – 2026-03-02 14:16:30 +05:00", "сведения ещё не синхронизированы / not synced yet"),
    ], "before the first recording: not started; after the last synced segment: not synced"


def test_text_from_devices_is_escaped_never_markup(review: Review) -> None:
    with review.sessions() as session, session.begin():
        protocol = session.get(Protocol, NUMBER)
        assert protocol is not None
        protocol.driver_name = '<script>alert("x")</script>'
    assert review.login() == 303
    text = review.client.get(f"/review/protocols/{NUMBER}").text
    assert "<script>alert" not in text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text


def test_every_protocol_page_view_is_audited_and_shown_at_the_bottom(review: Review) -> None:
    assert review.login() == 303
    review.client.get(f"/review/protocols/{NUMBER}")
    review.clock.advance(60)
    assert review.login("boris") == 303
    text = review.client.get(f"/review/protocols/{NUMBER}").text
    rows = _audit_rows(review.sessions)
    assert [(r.supervisor_login, r.action, r.protocol_number) for r in rows] == [
        ("anna", "protocol.view", NUMBER),
        ("boris", "protocol.view", NUMBER),
    ]
    assert rows[1].at - rows[0].at == timedelta(seconds=60)
    trail = text.split("Access audit")[1]
    assert trail.index("anna") < trail.index("boris")
    assert trail.count("protocol.view") == 2


def test_pure_uncovered_time_and_hole_kinds() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    m = timedelta(minutes=1)
    holes = uncovered(Interval(t, t + 10 * m), [Interval(t + m, t + 3 * m), Interval(t + 3 * m, t + 5 * m)])
    assert [(h.start - t, h.end - t) for h in holes] == [(0 * m, 1 * m), (5 * m, 10 * m)]
    assert uncovered(Interval(t, t + m), [Interval(t - m, t + 2 * m)]) == []

    def seg(seq: int, start: int, end: int, recording: str) -> FootageSegment:
        return FootageSegment("D", seq, t + start * m, t + end * m, "stored", 1, "0" * 64, recording, None, None)

    window_holes = [Interval(t, t + m), Interval(t + 3 * m, t + 4 * m), Interval(t + 6 * m, t + 7 * m)]
    same = [seg(1, 1, 2, "r1"), seg(2, 2, 3, "r1"), seg(3, 4, 5, "r1"), seg(4, 5, 6, "r1")]
    kinds = [h.kind for h in classify_holes(window_holes, same, None, None)]
    assert kinds == [HoleKind.NOT_STARTED, HoleKind.UNEXPLAINED, HoleKind.NOT_SYNCED]
    restarted = [seg(1, 1, 2, "r1"), seg(2, 2, 3, "r1"), seg(3, 4, 5, "r2"), seg(4, 5, 6, "r2")]
    kinds = [h.kind for h in classify_holes(window_holes, restarted, Neighbour(t - m, "r0"), Neighbour(t + 9 * m, "r2"))]
    assert kinds == [HoleKind.NOT_STARTED, HoleKind.NOT_STARTED, HoleKind.UNEXPLAINED], (
        "a new recording after a hole: the recorder was not running; the same recording: unexplained"
    )


def test_protocol_page_shows_declined_aborted_and_settled_attempts_in_words(review: Review) -> None:
    """A protocol with two declines, an aborted attempt and one settled by a decision: each attempt with its
    terminal result code in words, and the settlement with its evidence, who decided and why."""
    from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy

    number = "KZ-2026-000778"
    at = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)

    def attempt(n: int, state: str, code: int | None, text: str, reason: str) -> PaymentAttemptCopy:
        return PaymentAttemptCopy(
            attempt_id=f"a{n}-0000-0000", record_id=f"r{n}", device_id="DEV-REV1", protocol_number=number,
            state=state, revision=4, amount_minor=1081250, currency="KZT", officer_badge="B-1001",
            started_at=at + timedelta(minutes=n), updated_at=at + timedelta(minutes=n), masked_pan="4***********1014",
            card_scheme="Visa Debit", result_code=code, result_text=text, reason=reason, received_at=at,
        )  # fmt: skip

    with review.sessions() as session, session.begin():
        session.add_all(
            [
                attempt(1, "declined", 0x05, "declined by the card issuer", "declined: host"),
                attempt(2, "declined", 0x37, "declined by the card issuer", "<script>alert(1)</script>"),
                attempt(3, "aborted", None, "", "the own-card question could not be answered; 06 B0"),
                attempt(4, "not_charged", None, "", "settled by a decision"),
                PaymentSettlementCopy(
                    settlement_id="s1", record_id="r9", device_id="DEV-REV1", attempt_id="a4-0000-0000",
                    protocol_number=number, outcome="not_charged", method="decision",
                    evidence="the terminal refused Repeat Receipt (84 83)", decided_by="SUP-anna",
                    reason="driver's bank shows no debit", amount_minor=1081250, currency="KZT",
                    settled_at=at + timedelta(hours=1), received_at=at,
                ),
            ]
        )
    assert review.login() == 303
    text = review.client.get(f"/review/protocols/{number}").text
    for expected in (
        "оплаты нет / not paid — попыток / attempts: 4",
        "отклонено / declined",
        "отклонено / declined",
        "declined by the card issuer (0x05)",
        "declined by the card issuer (0x37)",
        "прервана на терминале / aborted on the terminal",
        "06 B0",
        "не списано / not charged",
        "решение / a decision",
        "the terminal refused Repeat Receipt (84 83)",
        "SUP-anna",
        "driver&#39;s bank shows no debit",
        "Visa Debit •••• 1014",
    ):
        assert expected in text, expected
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
