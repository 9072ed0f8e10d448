"""Finding a stop: by IIN, by the driver's name in Cyrillic or Latin letters (either spelling finds the other,
a beginning is enough, a name that only looks alike is not a match), by a range of days; the most recent
stops when nothing is asked; results link to the stop and the stop links back to them and to the stops of
the same driver, vehicle and officer."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from core.name_search import name_keys, name_matches, search_key

from .conftest import DEVICE, NUMBER, TIMES, Workspace
from .footage_support import StopTimes, add_stop_rows


def _times(days: int) -> StopTimes:
    d = timedelta(days=days)
    return StopTimes(*(getattr(TIMES, f) + d for f in StopTimes.__dataclass_fields__))


@pytest.fixture
def many(ws: Workspace) -> Workspace:
    """Four more stops: other drivers, one with a Latin name, on other days."""
    for number, driver, iin, days in (
        ("KZ-2026-002000", "Роман Ким", "900202400123", 1),
        ("KZ-2026-003000", "KASYMOV NURLAN", "770303300555", 2),
        ("KZ-2026-004000", "Хасанов Ерлан", "850101300999", 3),
        ("KZ-2026-005000", "Жанболатова Айгерим", "950505400111", 9),
    ):
        t = _times(days)
        add_stop_rows(ws.sessions, number, DEVICE, t, (t.opened, t.approved), driver=driver, iin=iin,
                      plate=f"{days}00XYZ02")  # fmt: skip
    return ws


def _found(ws: Workspace, **params: str) -> list[str]:
    response = ws.client.get("/review/protocols", params=params)
    assert response.status_code == 200, response.text[:300]
    return re.findall(r'<a class="protocol" href="[^"]+">([^<]+)</a>', response.text)


def test_search_by_iin_whole_or_its_beginning(many: Workspace) -> None:
    assert many.login() == 303
    assert _found(many, iin="850101300124") == [NUMBER]
    assert sorted(_found(many, iin="850101")) == ["KZ-2026-001234/1", "KZ-2026-004000"]
    refused = many.client.get("/review/protocols", params={"iin": "85O1"})
    assert refused.status_code == 400 and "IIN" in refused.text


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Жанболатов", ["KZ-2026-005000", "KZ-2026-001234/1"]),  # the last word typed may be a beginning
        ("Zhanbolatov", ["KZ-2026-005000", "KZ-2026-001234/1"]),
        ("Zhanbolatov Arman", ["KZ-2026-001234/1"]),
        ("Janbolatov Arman", ["KZ-2026-001234/1"]),
        ("arman zhanbolatov", ["KZ-2026-001234/1"]),
        ("Жанбол", ["KZ-2026-005000", "KZ-2026-001234/1"]),
        ("Касымов", ["KZ-2026-003000"]),
        ("Qasymov Nurlan", ["KZ-2026-003000"]),
        ("Khasanov", ["KZ-2026-004000"]),
        ("Hasanov", ["KZ-2026-004000"]),
        ("Roman", ["KZ-2026-002000"]),
        ("Арман Роман", []),
    ],
)
def test_a_name_typed_in_either_script_finds_the_stop(many: Workspace, typed: str, expected: list[str]) -> None:
    assert many.login() == 303
    assert _found(many, name=typed) == expected


def test_a_look_alike_name_is_not_a_match_though_its_key_is_the_same() -> None:
    assert search_key("Арман") == search_key("Роман") == "RMN", "keys only choose candidates"
    assert not name_matches("Арман", "Роман Ким") and name_matches("Arman", "Жанболатов Арман")
    assert name_keys("Жанболатов Арман") == ["JNBLTV", "RMN"]


def test_a_range_of_days_and_the_recent_stops(many: Workspace) -> None:
    assert many.login() == 303
    assert _found(many, date_from="2026-03-03", date_to="2026-03-04") == ["KZ-2026-003000", "KZ-2026-002000"]
    assert _found(many, date_from="2026-03-05") == ["KZ-2026-005000", "KZ-2026-004000"]
    reversed_range = many.client.get("/review/protocols", params={"date_from": "2026-03-05", "date_to": "2026-03-01"})
    assert reversed_range.status_code == 400 and "before the first" in reversed_range.text
    recent = many.client.get("/review/protocols").text
    assert "Последние остановки / Recent stops" in recent
    assert re.findall(r'<a class="protocol" href="[^"]+">([^<]+)</a>', recent) == [
        "KZ-2026-005000", "KZ-2026-004000", "KZ-2026-003000", "KZ-2026-002000", NUMBER,
    ], "newest first"  # fmt: skip


def test_results_link_to_the_stop_and_the_stop_links_back_and_to_related_stops(many: Workspace) -> None:
    assert many.login() == 303
    results = many.client.get("/review/protocols", params={"name": "Zhanbolatov"}).text
    link = re.search(r'<a class="protocol" href="([^"]+)">KZ-2026-001234/1</a>', results)
    assert link is not None and "from=name%3DZhanbolatov" in link.group(1)
    stop = many.client.get(link.group(1).replace("&amp;", "&")).text
    assert '<a href="/review/protocols?name=Zhanbolatov" class="back">' in stop, "back to the same results"
    for related in ("iin=850101300124", "plate=123ABC01", "badge=B-1001", "date=2026-03-02"):
        assert f'href="/review/protocols?{related}"' in stop, related
    assert _found(many, plate="123ABC01") == [NUMBER]
    hostile = many.client.get(f"/review/protocols/{NUMBER.replace('/', '%2F')}", params={"from": "x=<b>&next=//evil"})
    assert hostile.status_code == 200 and "class=\"back\"" not in hostile.text, "only a search's own fields link back"
