"""The HTTP server under hostile requests, sent over real sockets to a real ``patrol-server run`` process:
nothing is read before authentication, every malformed number is a 400 naming it, every synced protocol
number opens its page, a disabled account is no password oracle, the login comes back to the page asked
for, and every response carries the security headers."""

from __future__ import annotations

import string
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.upload_auth import HEADER_TIMESTAMP
from edge.identity import DeviceIdentity
from server.db.protocols import Protocol
from server.review.urls import protocol_url
from server.security_headers import SECURITY_HEADERS

from ..browser_support import OFFENCE_AT, LiveServer, Stop, add_protocol_row, seed_stop
from .http_client import (
    login_form,
    post_login,
    provision_device,
    raw_http,
    request_head,
    signed,
    supervisor_client,
)

HUGE = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def stop(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Stop:
    return seed_stop(live_server, tmp_path_factory.mktemp("device"))


@pytest.fixture(scope="module")
def device(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> DeviceIdentity:
    return provision_device(live_server, tmp_path_factory.mktemp("keys"), f"DEV-H-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def supervisor(live_server: LiveServer) -> Iterator[httpx.Client]:
    client = supervisor_client(live_server)
    try:
        yield client
    finally:
        client.close()


def _server_rss_kib(server: LiveServer) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- read nothing before authentication ----------------------------------------------------------------


def test_unauthenticated_announce_is_answered_before_its_body_is_read(live_server: LiveServer) -> None:
    path = "/api/video/segments/DEV-X/1"
    rss_before = _server_rss_kib(live_server)
    huge = raw_http(live_server.url, request_head("POST", path, {"Content-Length": str(HUGE)}))
    assert huge.status == 413 and b"at most 65536 bytes" in huge.body
    small = raw_http(live_server.url, request_head("POST", path, {"Content-Length": "1000"}))
    assert small.status == 401 and b"X-Patrol-Device" in small.body
    chunked = raw_http(
        live_server.url,
        request_head("POST", path, {"Transfer-Encoding": "chunked", "X-Patrol-Device": "DEV-X"}) + b"10000\r\n",
    )
    assert chunked.status == 401 and b"unknown or inactive" in chunked.body
    assert _server_rss_kib(live_server) - rss_before < 32 * 1024


def test_signed_announce_declaring_too_much_is_refused_before_its_body(
    live_server: LiveServer, device: DeviceIdentity
) -> None:
    path = f"/api/video/segments/{device.device_id}/1"
    headers = signed(device, "POST", path, b"{}") | {"Content-Length": str(HUGE)}
    answer = raw_http(live_server.url, request_head("POST", path, headers))
    assert answer.status == 413


def test_signed_announce_sending_more_than_the_limit_is_cut_off(
    live_server: LiveServer, device: DeviceIdentity
) -> None:
    path = f"/api/video/segments/{device.device_id}/1"
    body = b" " * (200 * 1024)
    headers = signed(device, "POST", path, body)
    response = httpx.post(f"{live_server.url}{path}", content=iter([body]), headers=headers, timeout=30)
    assert response.status_code == 413 and "at most 65536 bytes" in response.json()["error"]


# --- every 500 becomes a 400 with a reason ---------------------------------------------------------------


def test_deeply_nested_announce_body_is_a_400(live_server: LiveServer, device: DeviceIdentity) -> None:
    path = f"/api/video/segments/{device.device_id}/1"
    body = b"[" * 20000
    response = httpx.post(f"{live_server.url}{path}", content=body, headers=signed(device, "POST", path, body))
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]


def test_timestamp_of_400_digits_is_a_400(live_server: LiveServer, device: DeviceIdentity) -> None:
    path = f"/api/video/segments/{device.device_id}/1"
    headers = signed(device, "GET", path) | {HEADER_TIMESTAMP: "9" * 400}
    response = httpx.get(f"{live_server.url}{path}", headers=headers)
    assert response.status_code == 400 and HEADER_TIMESTAMP in response.json()["error"]


@pytest.mark.parametrize("seq", ["%C2%B2", "%D9%A1", "%EF%BC%91", "0", "1" * 20, "-1", "+1", "1%20"])
def test_segment_numbers_are_ascii_digits_only(
    live_server: LiveServer, device: DeviceIdentity, supervisor: httpx.Client, seq: str
) -> None:
    """'²' made int() fail (500) and '١' (Arabic-Indic one) was read as segment 1."""
    base = f"{live_server.url}/api/video/segments/{device.device_id}/{seq}"
    path = urlsplit(base).path
    status = httpx.get(base, headers=signed(device, "GET", path))
    assert status.status_code == 400 and "segment number" in status.json()["error"]
    content = supervisor.get(f"{base}/content")
    assert content.status_code == 400 and "segment number" in content.json()["error"]


@pytest.mark.parametrize("value", ["\xb2", "\xb2" * 3, "1" * 30, "-5", "0x10", ""])
def test_upload_offset_is_ascii_digits_only(live_server: LiveServer, device: DeviceIdentity, value: str) -> None:
    path = f"/api/video/segments/{device.device_id}/1/data"
    answer = raw_http(
        live_server.url, request_head("PUT", path, {"Upload-Offset": value, "Content-Length": "0"})
    )
    assert answer.status == 400 and b"Upload-Offset" in answer.body


@pytest.mark.parametrize(
    "spec", ["bytes=" + "5" * 5000 + "-", "bytes=-" + "5" * 5000, "bytes=\xb2-", "bytes=\xd9\xa1-", "bits=0-1", "bytes=-"]
)
def test_malformed_range_is_a_400(live_server: LiveServer, supervisor: httpx.Client, stop: Stop, spec: str) -> None:
    path = f"/api/video/segments/{stop.device_id}/{stop.seq}/content"
    cookie = "; ".join(f"{k}={v}" for k, v in supervisor.cookies.items())
    answer = raw_http(live_server.url, request_head("GET", path, {"Cookie": cookie, "Range": spec}))
    assert answer.status == 400 and b"Range header" in answer.body


# --- HEAD and headers on content -------------------------------------------------------------------------


def test_head_on_segment_content_answers_its_headers_without_the_bytes(
    live_server: LiveServer, supervisor: httpx.Client, stop: Stop
) -> None:
    url = f"{live_server.url}/api/video/segments/{stop.device_id}/{stop.seq}/content"
    whole = supervisor.get(url)
    head = supervisor.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(whole.content)) == whole.headers["content-length"]
    assert head.headers["etag"] == whole.headers["etag"] and head.headers["accept-ranges"] == "bytes"
    part = supervisor.head(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"
    assert httpx.head(url).status_code == 401, "HEAD needs a login like GET"


def test_receipt_pages_content_and_errors_carry_the_review_pages_headers(
    live_server: LiveServer, supervisor: httpx.Client, stop: Stop
) -> None:
    review = supervisor.get(f"{live_server.url}/review/protocols")
    assert review.status_code == 200
    expected = {name.lower(): review.headers[name] for name in SECURITY_HEADERS}
    assert expected["referrer-policy"] == "same-origin" and expected["cache-control"] == "no-store"
    content = f"{live_server.url}/api/video/segments/{stop.device_id}/{stop.seq}/content"
    for response in (
        httpx.get(f"{live_server.url}/r/not-a-code"),
        httpx.get(f"{live_server.url}/r/not-a-code", params={"format": "json"}),
        supervisor.get(content),
        supervisor.get(content, headers={"Range": "bytes=0-99"}),
        supervisor.head(content),
        httpx.get(content),
        supervisor.get(f"{live_server.url}/api/video/segments/{stop.device_id}/999/content"),
        supervisor.get(f"{live_server.url}/review/no-such-page"),
    ):
        got = {name: response.headers.get(name) for name in expected}
        assert got == expected, response.request.url


# --- protocol numbers ------------------------------------------------------------------------------------

_NUMBER_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=32
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=_NUMBER_TEXT)
@example(number="AB/123")
@example(number="A B")
@example(number="..")
@example(number=".")
@example(number="a/../b")
@example(number="?x=1#y")
@example(number="%2F%20")
@example(number="line\nbreak")
@example(number="trailing/")
@example(number="Ё-2026/٣")
@example(number=string.printable[:32])
def test_every_synced_protocol_number_opens_its_page(
    live_server: LiveServer, supervisor: httpx.Client, device: DeviceIdentity, number: str
) -> None:
    with live_server.sessions() as session:
        known = session.scalar(select(Protocol.number).where(Protocol.number == number))
    if known is None:
        add_protocol_row(live_server.sessions, number, device.device_id, OFFENCE_AT, "123ABC01", "B-1")
    page = supervisor.get(f"{live_server.url}{protocol_url(number)}")
    assert page.status_code == 200, (number, page.text[:300])
    assert "Протокол / Protocol" in page.text


def test_protocol_number_longer_than_any_synced_one_is_a_400(live_server: LiveServer, supervisor: httpx.Client) -> None:
    page = supervisor.get(f"{live_server.url}{protocol_url('9' * 33)}")
    assert page.status_code == 400 and "1-32 characters" in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/review/protocols?number=AB%00C",
        "/review/protocol?number=%00",
        "/review/protocols/AB%00C",
    ],
)
def test_a_nul_in_a_protocol_number_is_a_400_never_a_database_error(
    live_server: LiveServer, supervisor: httpx.Client, path: str
) -> None:
    page = supervisor.get(f"{live_server.url}{path}")
    assert page.status_code == 400 and "no NUL" in page.text, (page.status_code, page.text[:300])


# --- logins ----------------------------------------------------------------------------------------------


def _comparable(response: httpx.Response) -> tuple[int, str, list[str], dict[str, str]]:
    """What a client can see of a login answer, with the fresh form token taken out."""
    text = response.text
    for token in response.cookies.values():
        text = text.replace(token, "TOKEN")
    cookies = sorted(c.split("=", 1)[0] for c in response.headers.get_list("set-cookie"))
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "content-length", "set-cookie")}
    return response.status_code, text, cookies, headers


def test_a_disabled_account_with_the_right_password_answers_as_a_wrong_password(
    live_server: LiveServer, tmp_path: Path
) -> None:
    login = f"sv-{uuid.uuid4().hex[:8]}"
    password_file = tmp_path / "password"
    password_file.write_text("another good password\n")
    live_server.cli("supervisor", "add", login, "--name", "Борис Ахметов", "--password-file", str(password_file))
    live_server.cli("supervisor", "disable", login)
    with httpx.Client() as client:
        right = post_login(client, live_server.url, login, "another good password")
    with httpx.Client() as client:
        wrong = post_login(client, live_server.url, login, "not the password at all")
    with httpx.Client() as client:
        unknown = post_login(client, live_server.url, f"nobody-{uuid.uuid4().hex[:6]}", "whatever password")
    assert right.status_code == 401
    assert _comparable(right) == _comparable(wrong) == _comparable(unknown)


def test_login_redirect_keeps_the_whole_query_of_the_page_asked_for(
    live_server: LiveServer, stop: Stop
) -> None:
    asked = f"/review/protocols?{urlencode({'number': stop.number[:6], 'plate': stop.plate, 'date': '2026-03-02'})}"
    with httpx.Client() as client:
        first = client.get(f"{live_server.url}{asked}", follow_redirects=False)
        assert first.status_code == 303
        login_page = client.get(f"{live_server.url}{first.headers['location']}")
        assert f'name="next" value="{asked.replace("&", "&amp;")}"' in login_page.text
        token = login_form(client, live_server.url)
        back = client.post(
            f"{live_server.url}/review/login",
            data={"csrf": token, "login": live_server.login, "password": live_server.password, "next": asked},
            follow_redirects=False,
        )
        assert back.status_code == 303 and back.headers["location"] == asked
        found = client.get(f"{live_server.url}{asked}")
        assert stop.number in found.text


def test_form_posts_are_judged_by_sec_fetch_site_then_origin(live_server: LiveServer) -> None:
    """Chromium sent ``Origin: null`` under ``Referrer-Policy: no-referrer``; its ``Sec-Fetch-Site`` says
    same-origin. Cross-site and same-site posts stay refused whatever the Origin says."""

    def attempt(headers: dict[str, str]) -> int:
        with httpx.Client() as client:
            token = login_form(client, live_server.url)
            return client.post(
                f"{live_server.url}/review/login",
                data={"csrf": token, "login": live_server.login, "password": live_server.password},
                headers=headers,
                follow_redirects=False,
            ).status_code

    assert attempt({"Origin": "null", "Sec-Fetch-Site": "same-origin"}) == 303
    assert attempt({"Origin": live_server.url, "Sec-Fetch-Site": "same-origin"}) == 303
    assert attempt({"Origin": live_server.url}) == 303
    assert attempt({}) == 303
    assert attempt({"Origin": live_server.url, "Sec-Fetch-Site": "cross-site"}) == 403
    assert attempt({"Origin": live_server.url, "Sec-Fetch-Site": "same-site"}) == 403
    assert attempt({"Sec-Fetch-Site": "none"}) == 403
    assert attempt({"Origin": "null"}) == 403
    assert attempt({"Origin": "http://evil.example"}) == 403
