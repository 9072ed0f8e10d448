"""The new-stop form and the roadside check in a real browser: each field's error beside it, in the officer's
language, with nothing stored; the IIN's check digit checked as it is typed; the phone for notices as a new
protocol record; the unpaid-fines check without a list and with one, offline."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from officer_rig import DRIVER_IIN, OfficerRig
from sqlalchemy import func, select

from core.fines.unpaid_list import UnpaidEntry, encode_unpaid
from core.sync.datasets import sign_dataset
from core.sync.signing import KeyRing, Signer, Verifier
from edge.db.base import transaction
from edge.db.protocols import Protocol
from edge.sync.datasets import apply_dataset
from edge.sync.outbox import OutboxContent, OutboxRecord

pytestmark = pytest.mark.browser


def _stored(rig: OfficerRig) -> tuple[int, int]:
    with rig.sessions() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Protocol)) or 0),
            int(s.scalar(select(func.count()).select_from(OutboxRecord)) or 0),
        )


def _submit(rig: OfficerRig, page: Any, article: str = "592.1", **fields: str) -> None:
    page.goto(f"{rig.url}/stops/new")
    values = {
        "driver_iin": DRIVER_IIN,
        "driver_name": "Жанболатов Арман",
        "vehicle_plate": "123ABC01",
        **fields,
    }
    for name, value in values.items():
        page.fill(f"#{name}", value)
    page.click(f"button.article-button[value='{article}']")
    page.wait_for_load_state()


@pytest.mark.parametrize(
    ("fields", "article", "field", "message"),
    [
        ({"driver_iin": "850101300125"}, "592.1", "driver_iin", "Контрольная цифра ИИН не сходится"),
        ({"driver_iin": "85010130012"}, "592.1", "driver_iin", "ИИН — ровно 12 цифр"),
        ({"driver_name": "Жанболатов Arman"}, "592.1", "driver_name", "одним алфавитом"),
        ({"driver_name": ""}, "592.1", "driver_name", "Введите ФИО водителя"),
        ({"vehicle_plate": "12ABC"}, "592.1", "vehicle_plate", "Формат номера"),
        ({"vehicle_plate": "123ABC99"}, "592.1", "vehicle_plate", "Код региона"),
        ({"driver_phone": "12345"}, "592.1", "driver_phone", "Мобильный телефон"),
        ({"number": ""}, "592.1", "number", "Введите номер протокола"),
        ({}, "", "article", "Выберите нарушение"),
    ],
)
def test_a_wrong_field_is_named_beside_it_and_nothing_is_stored(
    rig: OfficerRig, tablet: Any, fields: dict[str, str], article: str, field: str, message: str
) -> None:
    rig.sign_in(tablet)
    before = _stored(rig)
    if article:
        _submit(rig, tablet, article, **fields)
    else:  # Enter in a field never submits; the form's own default button does, with no article
        _submit(rig, tablet, "592.1", driver_iin="x")
        tablet.fill("#driver_iin", DRIVER_IIN)
        tablet.evaluate("document.querySelector('.default-submit').click()")
        tablet.wait_for_load_state()
    assert message in tablet.inner_text(f"#{field}-error")
    assert tablet.locator(".field-error").count() == 1
    assert _stored(rig) == before
    if field != "article":
        assert tablet.get_attribute(f"#{field}", "aria-invalid") == "true"


def test_an_article_that_cannot_be_paid_on_the_spot_says_why_and_cannot_be_chosen(
    rig: OfficerRig, tablet: Any
) -> None:
    rig.sign_in(tablet, "B-3")
    tablet.goto(f"{rig.url}/stops/new")
    button = tablet.locator("button.article-button[value='596.3']")
    assert button.is_disabled()
    assert "not payable on the spot" in button.inner_text() and "not a fine" in button.inner_text()
    payable = tablet.locator("button.article-button[value='592.1']").inner_text().replace("\u00a0", " ")
    assert (
        "Fine 21 625.00 ₸" in payable and "now 10 812.50 ₸, until 12.03.2026" in payable
    )  # 8 March moved to Monday 9


def test_every_error_at_once_in_kazakh(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet, "B-2")
    before = _stored(rig)
    _submit(
        rig,
        tablet,
        "592.1",
        driver_iin="850101300125",
        driver_name="Ivan Иванов",
        vehicle_plate="1",
        driver_phone="99",
    )
    errors = tablet.locator(".field-error").all_inner_texts()
    assert len(errors) == 4
    assert "ЖСН бақылау саны сәйкес емес: цифрларды тексеріңіз." in errors
    assert _stored(rig) == before
    assert tablet.input_value("#driver_name") == "Ivan Иванов"  # what was typed stays


def test_iin_check_digit_is_checked_as_it_is_typed(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet)
    tablet.goto(f"{rig.url}/stops/new")
    assert tablet.get_attribute("#driver_iin", "inputmode") == "numeric"
    assert tablet.get_attribute("#driver_phone", "inputmode") == "numeric"
    tablet.type("#driver_iin", "85010130012")
    assert tablet.get_attribute("#driver_iin", "data-iin") == "short"
    tablet.type("#driver_iin", "5")
    assert tablet.get_attribute("#driver_iin", "data-iin") == "bad"
    assert "Контрольная цифра" in tablet.inner_text("#driver_iin-live")
    tablet.fill("#driver_iin", "")
    tablet.type("#driver_iin", "061211600012")  # valid by the second pass of weights
    assert tablet.get_attribute("#driver_iin", "data-iin") == "ok"


def test_article_picker_finds_by_number_and_by_words_in_any_language(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet)
    tablet.goto(f"{rig.url}/stops/new")

    def shown(query: str) -> list[str]:
        tablet.fill("#article-search", query)
        return [b.get_attribute("value") or "" for b in tablet.locator(".article:not([hidden]) button").all()]

    assert shown("599") == ["599.1"]
    assert shown("592 3") == ["592.3", "592.3-1"]
    assert shown("светофор") == ["599.1"]
    assert shown("pedestrian") == ["600.1"]
    assert shown("жаяу жүргіншіге") == ["600.1"]  # Kazakh title
    assert shown("жаяу") == ["596.1", "600.1"]
    assert len(shown("")) > 10


def test_phone_given_later_syncs_as_a_new_protocol_record(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet)
    number = rig.new_stop(tablet)
    tablet.fill("#driver_phone", "701 123 45 67")
    tablet.click("form[action='/stop/phone'] button")
    assert tablet.inner_text("#phone") == "+77011234567"
    with rig.sessions() as s:
        bodies = s.scalars(
            select(OutboxContent.body)
            .join(OutboxRecord, OutboxRecord.seq == OutboxContent.seq)
            .where(OutboxRecord.record_type == "protocol", OutboxContent.body.contains(number))
            .order_by(OutboxRecord.seq)
        ).all()
        sv = s.scalars(select(OutboxRecord.sv).where(OutboxRecord.record_type == "protocol")).all()
    assert (
        len(bodies) == 2
        and '"driver_phone":null' in bodies[0]
        and '"driver_phone":"+77011234567"' in bodies[1]
    )
    assert set(sv) == {2}


def test_roadside_check_without_a_list_then_with_one(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet)
    tablet.goto(f"{rig.url}/check?iin={DRIVER_IIN}")
    assert tablet.locator("#unpaid").get_attribute("data-state") == "no_list"
    assert "Списка пока нет" in tablet.inner_text("#unpaid")
    rig.shot(tablet, "03a-check-no-list")

    server = Signer.generate()
    made = rig.clock.now() - timedelta(hours=3)
    content = encode_unpaid(
        [
            UnpaidEntry(DRIVER_IIN, 3, 6_487_500, date(2025, 11, 20)),
            UnpaidEntry("900101300001", 1, 100, date(2026, 1, 1)),
        ],
        "KZT",
    )
    with transaction(rig.sessions) as s:
        apply_dataset(s, sign_dataset(server, "unpaid_fines", 7, content, made).to_wire(),
                      KeyRing([Verifier(server.public_raw())]), rig.clock.now())  # fmt: skip

    tablet.goto(f"{rig.url}/check?iin={DRIVER_IIN}")
    found = tablet.inner_text("#unpaid").replace("\u00a0", " ")
    assert tablet.locator("#unpaid").get_attribute("data-state") == "found"
    assert "Неоплаченных штрафов: 3, всего 64 875.00 ₸, самый старый от 20.11.2025" in found
    assert "Версия списка 7, составлен 3 ч назад" in tablet.inner_text("main")
    rig.shot(tablet, "03b-check-found")
    tablet.goto(f"{rig.url}/check?iin=061211600012")
    assert tablet.locator("#unpaid").get_attribute("data-state") == "none"
    tablet.goto(f"{rig.url}/check?iin=061211600013")
    assert "Контрольная цифра" in tablet.inner_text("#iin-error")

    number = rig.new_stop(tablet)  # the stop's page shows the same check
    assert tablet.locator("#unpaid").get_attribute("data-state") == "found"
    assert number in tablet.inner_text("h1")
