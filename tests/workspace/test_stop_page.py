"""The stop page's timeline: every event of the stop on the footage's clock, in order, in words (Russian or
Kazakh with English), local time with the offset, never a device's raw JSON; each event inside the window is a
button that plays from its moment."""

from __future__ import annotations

import re
from urllib.parse import quote

from .conftest import NUMBER, TIMES, Workspace

PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"


def test_the_events_of_the_stop_are_listed_in_order_in_words_on_the_local_clock(ws: Workspace) -> None:
    assert ws.login("anna") == 303
    page = ws.client.get(PAGE).text
    footage = page.split('<ol class="events">')[1].split("</ol>")[0]
    events = re.findall(r'<button type="button" class="event ev-(\w+)" data-at="(\d+)"><time>([^<]+)</time> ([^<]+)</button>',
                        footage)  # fmt: skip
    assert [(kind, when, words.strip()) for kind, _, when, words in events] == [
        ("bookmark", "2026-03-02 14:10:00 +05:00", "закладка: начало остановки / the stop begins / bookmark"),
        ("protocol", "2026-03-02 14:10:00 +05:00", "протокол составлен / protocol drawn up"),
        ("card", "2026-03-02 14:10:03 +05:00", "карта считана / card read"),
        ("check", "2026-03-02 14:10:04 +05:00", "проверка своей карты: совпадает / matches / own-card check"),
        ("pin", "2026-03-02 14:10:05 +05:00", "ввод ПИН, авторизация / PIN entry, authorisation"),
        ("approved", "2026-03-02 14:11:07 +05:00", "одобрено, оплачено / approved, paid"),
        ("receipt", "2026-03-02 14:11:08 +05:00", "экз. 1, водителю / copy 1, the driver&#39;s — напечатан / printed"),
        ("receipt", "2026-03-02 14:11:09 +05:00", "экз. 2, к протоколу / copy 2, for the protocol — напечатан / printed"),
    ]  # fmt: skip
    approved = next(at for kind, at, _, _ in events if kind == "approved")
    assert int(approved) == int(TIMES.approved.timestamp() * 1000), "the button plays from the event's moment"
    assert "bytes_sent" not in page and "{&#34;" not in page, "no raw JSON from the device"
    assert page.count('class="tl-mark tl-') == len(events), "each event is also marked on the timeline"
