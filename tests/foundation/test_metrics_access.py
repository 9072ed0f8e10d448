"""Who may scrape the server's ``/metrics``: with ``metrics.token`` only a request with that bearer token, from
anywhere; without one only this host's loopback, and not through a proxy. A refusal says what to do and
never shows a metric; no Authorization header of any kind gets in without the token, or makes a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from core.settings import ConfigError
from server.app import create_app
from server.config import MetricsSection, ServerConfig, load_server_config

TOKEN = "s3cret-scrape-token-0123456789"
METRIC = "patrolkit_ingest_records_total"


def _client(sessions: sessionmaker[Session], token: str | None, host: str) -> TestClient:
    app = create_app(ServerConfig(metrics=MetricsSection(token=token)), sessions)
    return TestClient(app, client=(host, 40000))


@pytest.fixture
def scraper(server_sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    """A scraper on the monitoring network, the server configured with a token."""
    with _client(server_sessions, TOKEN, "10.0.9.5") as client:
        yield client


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1"])
def test_without_a_token_this_hosts_loopback_may_scrape(server_sessions: sessionmaker[Session], host: str) -> None:
    with _client(server_sessions, None, host) as client:
        response = client.get("/metrics")
    assert response.status_code == 200 and METRIC in response.text


@pytest.mark.parametrize(
    ("host", "headers"),
    [
        ("10.0.9.5", {}),
        ("192.168.1.20", {}),
        ("testclient", {}),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"}),
        ("127.0.0.1", {"Forwarded": "for=203.0.113.7"}),
        ("127.0.0.1", {"X-Real-IP": "203.0.113.7"}),
    ],
)
def test_without_a_token_any_other_client_or_one_through_a_proxy_is_refused_and_told_to_configure_one(
    server_sessions: sessionmaker[Session], host: str, headers: dict[str, str]
) -> None:
    with _client(server_sessions, None, host) as client:
        response = client.get("/metrics", headers=headers)
    assert response.status_code == 403 and "metrics.token" in response.text and METRIC not in response.text


def test_with_a_token_only_its_bearer_may_scrape_from_anywhere(
    scraper: TestClient, server_sessions: sessionmaker[Session]
) -> None:
    good = scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200 and METRIC in good.text
    assert scraper.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    for header in ({}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"},
                   {"Authorization": TOKEN}, {"Authorization": "Bearer "}):  # fmt: skip
        refused = scraper.get("/metrics", headers=header)
        assert refused.status_code == 401 and METRIC not in refused.text, header
        assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
    with _client(server_sessions, TOKEN, "127.0.0.1") as local:
        assert local.get("/metrics").status_code == 401, "with a token, loopback needs it too"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
               max_size=300))  # fmt: skip
@example(f"Bearer {TOKEN[:-1]}")
@example(f"Bearer  {TOKEN} trailing")
def test_no_authorization_header_but_the_token_gets_in_and_none_makes_a_server_error(
    scraper: TestClient, header: str
) -> None:
    response = scraper.get("/metrics", headers={"Authorization": header.encode("latin-1")})  # type: ignore[dict-item]
    scheme, _, given_token = header.strip().partition(" ")  # the value as HTTP carries it: no outer spaces
    if scheme.lower() == "bearer" and given_token.strip() == TOKEN:
        assert response.status_code == 200
    else:
        assert response.status_code == 401 and METRIC not in response.text


@pytest.mark.parametrize("bad", ["short", "has spaces in the token 0123", "ключ-ключ-ключ-ключ-ключ"])
def test_a_bad_token_in_the_configuration_is_refused_naming_the_key(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_server_config(None, {"PATROLKIT_SERVER__METRICS__TOKEN": bad})
    assert "metrics.token" in str(err.value) and "PATROLKIT_SERVER__METRICS__TOKEN" in str(err.value)
