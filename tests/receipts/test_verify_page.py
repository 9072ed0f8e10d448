"""The server's public page /r/<code>: a genuine QR verifies for a registered device, a forged or altered one does not,
and once the payment has synced the page shows it."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.receipt_code import ReceiptClaim, encode_receipt_code
from core.signing import new_private_key, public_b64
from server.app import create_app
from server.config import ServerConfig
from server.db.base import transaction
from server.db.devices import Device
from server.db.protocols import Payment, Protocol

PAID_AT = datetime(2026, 3, 2, 4, 21, 5, tzinfo=UTC)


def _claim(amount: int = 1081250) -> ReceiptClaim:
    return ReceiptClaim("DEV-0001", "ERAP-2026-000123", "000042", amount, 398, PAID_AT)


@pytest.fixture
def device_key(server_sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    key = new_private_key()
    with transaction(server_sessions) as s:
        s.add(
            Device(
                device_id="DEV-0001",
                kid="k1",
                public_key_b64=public_b64(key),
                mqtt_username="DEV-0001",
                mqtt_password_hash="",
                label="",
                active=True,
                created_at=PAID_AT,
            )
        )
    return key


@pytest.fixture
def client(server_sessions: sessionmaker[Session]) -> TestClient:
    return TestClient(create_app(ServerConfig(), sessions=server_sessions))


def test_genuine_code_is_shown_genuine_but_not_yet_synced(client: TestClient, device_key) -> None:  # type: ignore[no-untyped-def]
    code = encode_receipt_code(_claim(), device_key)

    page = client.get(f"/r/{code}")
    data = client.get(f"/r/{code}", params={"format": "json"}).json()

    assert page.status_code == 200 and 'data-verdict="genuine"' in page.text
    assert "ERAP-2026-000123" in page.text
    assert data["genuine"] is True and data["synced"] is False
    assert data["reason"] == "genuine, not yet synced"
    assert data["claim"]["amount_minor"] == 1081250


def test_altered_code_is_not_genuine(client: TestClient, device_key) -> None:  # type: ignore[no-untyped-def]
    code = encode_receipt_code(_claim(), device_key)
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    # change the amount (u64 right after the three strings): 10 812.50 -> a smaller sum, signature kept
    body_len = len(raw) - 64
    raw[body_len - 14 + 7] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()

    resp = client.get(f"/r/{forged}", params={"format": "json"})

    assert resp.status_code == 404
    assert resp.json()["genuine"] is False and "forged or altered" in resp.json()["reason"]
    assert 'data-verdict="not_genuine"' in client.get(f"/r/{forged}").text


def test_code_signed_by_another_key_is_not_genuine(client: TestClient, device_key) -> None:  # type: ignore[no-untyped-def]
    forged = encode_receipt_code(_claim(), new_private_key())
    resp = client.get(f"/r/{forged}", params={"format": "json"})
    assert resp.status_code == 404 and resp.json()["verdict"] == "not_genuine"


def test_code_of_unregistered_device_is_not_genuine(client: TestClient) -> None:
    code = encode_receipt_code(_claim(), new_private_key())
    resp = client.get(f"/r/{code}", params={"format": "json"})
    assert resp.status_code == 404 and resp.json()["reason"] == "unknown device"


@pytest.mark.parametrize("garbage", ["x", "AAAA", "!!notbase64!!", "A" * 5000])
def test_garbage_code_is_rejected_as_malformed(client: TestClient, garbage: str) -> None:
    resp = client.get(f"/r/{garbage}", params={"format": "json"})
    assert resp.status_code == 400 and resp.json()["verdict"] == "malformed"
    assert resp.json()["reason"]


def test_synced_payment_is_shown_and_compared(
    client: TestClient, device_key: Ed25519PrivateKey, server_sessions: sessionmaker[Session]
) -> None:
    with transaction(server_sessions) as s:
        s.add(
            Protocol(
                number="ERAP-2026-000123", device_id="DEV-0001", jurisdiction="KZ", article="592 ч.1",
                article_title="", offence_at=PAID_AT, offence_date=date(2026, 3, 2), place="",
                driver_name="Жұмабаев Нұрлан", driver_iin="850101300124", vehicle_plate="123ABC01",
                officer_badge="KZ-7781", currency="KZT", fine_units=5, unit_value_minor=432500, unit_year=2026,
                full_minor=2162500, reduced_minor=1081250, discount_deadline=date(2026, 3, 9), legal_basis="",
                dataset_version="kz-2026.1", status="paid", created_at=PAID_AT, received_at=PAID_AT,
            )
        )  # fmt: skip
        s.flush()
        s.add(
            Payment(
                id="7d1b0e4e-0000-4000-8000-000000000001", device_id="DEV-0001",
                protocol_number="ERAP-2026-000123", amount_minor=1081250, currency="KZT",
                full_amount_minor=2162500, status="approved", name_check="MATCH", trace_no="000042",
                officer_badge="KZ-7781", approved_at=PAID_AT, received_at=PAID_AT,
            )
        )  # fmt: skip
    good = client.get(f"/r/{encode_receipt_code(_claim(), device_key)}", params={"format": "json"}).json()
    odd = client.get(
        f"/r/{encode_receipt_code(_claim(amount=5), device_key)}", params={"format": "json"}
    ).json()

    assert good["synced"] is True and good["matches_synced_payment"] is True
    assert good["payment"]["amount"] == "10 812.50 ₸"
    assert odd["genuine"] is True and odd["matches_synced_payment"] is False


def test_qr_printed_by_the_simulator_verifies_on_the_server_and_a_tampered_one_does_not(
    make_rig: Any, server_sessions: sessionmaker[Session], client: TestClient
) -> None:
    rig = make_rig("raster-58mm", "tcp")  # an image QR, decoded back from the printed raster
    rig.service.print_receipts(rig.payment_id)
    with transaction(server_sessions) as s:
        s.add(
            Device(
                device_id="DEV-0001", kid=rig.service.identity.kid, public_key_b64=rig.service.identity.public_key_b64,
                mqtt_username="DEV-0001", mqtt_password_hash="", label="", active=True, created_at=PAID_AT,
            )
        )  # fmt: skip
    url = rig.store.receipts[0].qr_codes()[0]
    code = url.rsplit("/", 1)[1]

    assert client.get(f"/r/{code}", params={"format": "json"}).json()["verdict"] == "genuine"
    tampered = code[:40] + ("A" if code[40] != "A" else "B") + code[41:]
    resp = client.get(f"/r/{tampered}", params={"format": "json"})
    assert resp.json()["genuine"] is False and resp.status_code in (400, 404)


@pytest.mark.parametrize(
    ("lang", "heading", "time_label"),
    [
        ("kk", "Түпнұсқа түбіртек", "Төлем уақыты"),
        ("ru", "Подлинная квитанция", "Время оплаты"),
        ("en", "Genuine receipt", "Paid at"),
    ],
)
def test_page_speaks_to_the_driver_in_three_languages_with_local_time_and_no_field_names(
    client: TestClient, device_key: Ed25519PrivateKey, lang: str, heading: str, time_label: str
) -> None:
    page = client.get(f"/r/{encode_receipt_code(_claim(), device_key)}", params={"lang": lang})

    assert page.status_code == 200 and f'<html lang="{lang}">' in page.text
    assert f'<h1 id="verdict">{heading}</h1>' in page.text
    assert (
        f'<th scope="row">{time_label}</th><td>02.03.2026 09:21</td>' in page.text
    )  # 04:21 UTC, Almaty local
    assert "ERAP-2026-000123" in page.text and "10 812.50" in page.text
    for internal in (
        "claim",
        "device_id",
        "protocol_number",
        "amount_minor",
        "currency_numeric",
        "paid_at",
        "DEV-0001",
    ):
        assert internal not in page.text, internal


def test_page_language_follows_the_browser_and_defaults_to_kazakh(
    client: TestClient, device_key: Ed25519PrivateKey
) -> None:
    url = f"/r/{encode_receipt_code(_claim(), device_key)}"
    assert '<html lang="ru">' in client.get(url, headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}).text
    assert '<html lang="en">' in client.get(url, headers={"Accept-Language": "de-DE,en;q=0.5"}).text
    assert '<html lang="kk">' in client.get(url, headers={"Accept-Language": "fr"}).text
    assert client.get(url, params={"lang": "xx"}).status_code == 422


def test_forged_code_page_tells_the_driver_not_to_rely_on_it(
    client: TestClient, device_key: Ed25519PrivateKey
) -> None:
    forged = encode_receipt_code(_claim(), new_private_key())
    page = client.get(f"/r/{forged}", params={"lang": "ru"})
    assert page.status_code == 404 and "Квитанция не подлинная" in page.text and "Не доверяйте" in page.text
    assert "signature does not verify" not in page.text
