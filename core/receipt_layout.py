"""The receipt's content and layout in Russian and Kazakh: ``ReceiptData`` (every value a receipt shows) and
``CopySpec`` (how one copy is printed) become a printer ``Document``. Pure, shared by the device (which
prints it) and the server (which renders the same receipt from the synced rows for an evidence export)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from core.iin import mask_iin
from core.money import Money, currency
from core.receipt_code import ReceiptClaim
from core.receipt_document import Align, Document, Feed, QrCode, Text
from core.terminal_time import terminal_time_text

RULE = "-" * 32
COPY_TITLES = {
    1: ("ЭКЗЕМПЛЯР НАРУШИТЕЛЯ (1/2)", "Құқық бұзушының данасы"),
    2: ("ЭКЗЕМПЛЯР К ПРОТОКОЛУ (2/2)", "Хаттамаға арналған данасы"),
}
NAME_CHECK = {
    "MATCH": "совпадает / сәйкес",
    "PROBABLE": "вероятно, подтверждено инспектором / инспектор растаған",
    "MISMATCH": "не совпадает / сәйкес емес",
    "UNAVAILABLE": "имя не считано / аты оқылмады",
}


@dataclass(frozen=True, slots=True)
class ReceiptData:
    """Every value a receipt shows, taken from the payment, protocol and officer rows (nothing computed anew)."""

    unit: str
    protocol_number: str
    offence_at: datetime
    place: str
    article: str
    article_title: str
    fine_units: int
    unit_value: Money
    unit_year: int
    full_amount: Money
    legal_basis: str
    amount_paid: Money
    driver_name: str
    driver_iin: str
    vehicle_plate: str
    officer_name: str
    officer_badge: str
    device_id: str
    card_scheme: str
    masked_pan: str
    cardholder_name: str | None
    name_check: str
    auth_code: str
    receipt_no: str
    trace_no: str
    terminal_id: str
    terminal_time: str
    approved_at: datetime

    def claim(self) -> ReceiptClaim:
        """What the verification QR signs."""
        return ReceiptClaim(
            device_id=self.device_id,
            protocol_no=self.protocol_number,
            rrn=self.trace_no,
            amount_minor=self.amount_paid.minor,
            currency_numeric=self.amount_paid.currency.numeric,
            paid_at=self.approved_at,
        )


def money_text(m: Money) -> str:
    """``10 812.50 ₸`` with plain spaces (the encoder prints ₸ as "тг" where the code page lacks it)."""
    return m.format(symbol=True).replace("\u00a0", " ")


class ProtocolRow(Protocol):
    """The fields of a stored protocol a receipt shows (the device's row and the server's copy alike)."""

    number: str
    offence_at: datetime
    place: str
    article: str
    article_title: str
    fine_units: int
    unit_value_minor: int
    unit_year: int
    legal_basis: str
    driver_name: str
    driver_iin: str
    vehicle_plate: str
    device_id: str


class PaymentRow(Protocol):
    """The fields of a stored payment a receipt shows."""

    currency: str
    full_amount_minor: int
    amount_minor: int
    officer_badge: str
    card_scheme: str
    masked_pan: str
    cardholder_name: str | None
    name_check: str
    auth_code: str
    receipt_no: str
    trace_no: str
    terminal_id: str
    terminal_time: str
    approved_at: datetime


def data_from_rows(payment: PaymentRow, protocol: ProtocolRow, officer_name: str, unit: str) -> ReceiptData:
    """``ReceiptData`` from a stored payment and its protocol (nothing computed anew): the device prints from
    its rows, the server draws the same receipt from its copies of them."""
    cur = currency(payment.currency)
    return ReceiptData(
        unit=unit,
        protocol_number=protocol.number,
        offence_at=protocol.offence_at,
        place=protocol.place,
        article=protocol.article,
        article_title=protocol.article_title,
        fine_units=protocol.fine_units,
        unit_value=Money(protocol.unit_value_minor, cur),
        unit_year=protocol.unit_year,
        full_amount=Money(payment.full_amount_minor, cur),
        legal_basis=protocol.legal_basis,
        amount_paid=Money(payment.amount_minor, cur),
        driver_name=protocol.driver_name,
        driver_iin=protocol.driver_iin,
        vehicle_plate=protocol.vehicle_plate,
        officer_name=officer_name,
        officer_badge=payment.officer_badge,
        device_id=protocol.device_id,
        card_scheme=payment.card_scheme,
        masked_pan=payment.masked_pan,
        cardholder_name=payment.cardholder_name,
        name_check=payment.name_check,
        auth_code=payment.auth_code,
        receipt_no=payment.receipt_no,
        trace_no=payment.trace_no,
        terminal_id=payment.terminal_id,
        terminal_time=payment.terminal_time,
        approved_at=payment.approved_at,
    )


@dataclass(frozen=True, slots=True)
class CopySpec:
    copy_no: int  # 1 driver, 2 protocol
    duplicate_no: int  # 0 original, k >= 1 duplicate № k
    printed_at: datetime
    mask_iin: bool
    verify_url: str
    timezone: str
    software_version: str


def fields(data: ReceiptData, spec: CopySpec) -> list[tuple[str, str]]:
    """The labelled fields in print order: (label, value). Tests compare printed text against these."""
    tz = ZoneInfo(spec.timezone)
    local = data.offence_at.astimezone(tz)
    iin = mask_iin(data.driver_iin, 2, 4) if spec.mask_iin else data.driver_iin
    holder = data.cardholder_name or "не считано / оқылмады"
    return [
        ("Протокол / Хаттама №", data.protocol_number),
        ("Дата / Күні", local.strftime("%d.%m.%Y")),
        ("Время / Уақыты", local.strftime("%H:%M")),
        ("Место / Орны", data.place),
        ("Статья / Бап", f"{data.article} КоАП РК / ӘҚБтК"),
        ("Нарушение / Құқық бұзушылық", data.article_title),
        ("Штраф / Айыппұл", f"{data.fine_units} МРП / АЕК"),
        (f"МРП / АЕК {data.unit_year}", money_text(data.unit_value)),
        ("Полная сумма / Толық сомасы", money_text(data.full_amount)),
        ("Скидка / Жеңілдік", data.legal_basis),
        ("ОПЛАЧЕНО / ТӨЛЕНДІ", money_text(data.amount_paid)),
        ("Водитель / Жүргізуші", data.driver_name),
        ("ИИН / ЖСН", iin),
        ("Госномер / Мемлекеттік нөмір", data.vehicle_plate),
        ("Инспектор / Инспектор", data.officer_name),
        ("Жетон / Белгі №", data.officer_badge),
        ("Устройство / Құрылғы", data.device_id),
        ("Карта / Карта", f"{data.card_scheme} {data.masked_pan}".strip()),
        ("Держатель / Ұстаушы", holder),
        ("Проверка имени / Атын тексеру", NAME_CHECK.get(data.name_check, data.name_check)),
        ("Код авторизации / Авторизация коды", data.auth_code),
        ("Чек / Trace", f"{data.receipt_no} / {data.trace_no}"),
        ("Терминал / Терминал", data.terminal_id),
        (
            "Время терминала / Терминал уақыты",
            terminal_time_text(data.terminal_time, data.approved_at, spec.timezone),
        ),
    ]


def render_copy(data: ReceiptData, spec: CopySpec) -> Document:
    """One copy as a printer Document."""
    if spec.copy_no not in COPY_TITLES:
        raise ValueError(f"copy must be 1 or 2, got {spec.copy_no}")
    tz = ZoneInfo(spec.timezone)
    title_ru, title_kz = COPY_TITLES[spec.copy_no]
    blocks: list[Text | QrCode | Feed] = [
        Text("МВД РК / ҚР ІІМ", Align.CENTER, bold=True),
        Text(data.unit, Align.CENTER),
        Text("Квитанция об уплате административного штрафа", Align.CENTER, bold=True),
        Text("Әкімшілік айыппұлды төлеу туралы түбіртек", Align.CENTER),
        Text(title_ru, Align.CENTER, bold=True),
        Text(title_kz, Align.CENTER),
    ]
    if spec.duplicate_no:
        blocks += [
            Text(f"ДУБЛИКАТ / DUPLICATE № {spec.duplicate_no}", Align.CENTER, bold=True),
            Text(f"КӨШІРМЕ № {spec.duplicate_no}", Align.CENTER, bold=True),
            Text(
                f"Повторная печать / Қайта басу: {spec.printed_at.astimezone(tz):%d.%m.%Y %H:%M}",
                Align.CENTER,
            ),
        ]
    blocks.append(Text(RULE, Align.CENTER))
    for label, value in fields(data, spec):
        if label.startswith("ОПЛАЧЕНО"):
            blocks += [Text(label, Align.CENTER, bold=True), Text(value, Align.CENTER, bold=True, large=True)]
            blocks.append(
                Text(
                    "Валюта / Валюта: "
                    + f"{data.amount_paid.currency.code} ({data.amount_paid.currency.numeric})"
                )
            )
        else:
            blocks.append(Text(f"{label}: {value}"))
        if label in ("Скидка / Жеңілдік", "ОПЛАЧЕНО / ТӨЛЕНДІ", "Устройство / Құрылғы"):
            blocks.append(Text(RULE, Align.CENTER))
    blocks += [
        Text("ОДОБРЕНО / APPROVED", Align.CENTER, bold=True),
        Text(RULE, Align.CENTER),
        Text("Оплата со скидкой означает признание правонарушения и завершает дело (ст. 810 КоАП РК)."),
        Text("Жеңілдікпен төлеу құқық бұзушылықты мойындауды білдіреді және істі аяқтайды."),
        Text("Обжалование и проверка: eGov, ERAP. Дубликат выдаёт инспектор или ДП."),
        Text("Шағымдану және тексеру: eGov, ERAP."),
        Text("Проверить подлинность / Түпнұсқалығын тексеру:", Align.CENTER),
        QrCode(spec.verify_url),
        Text(
            f"{spec.software_version} · {spec.printed_at.astimezone(tz):%d.%m.%Y %H:%M} · копия {spec.copy_no}/2",
            Align.CENTER,
        ),
        Feed(1),
    ]
    return Document(tuple(blocks))
