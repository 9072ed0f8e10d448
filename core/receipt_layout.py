"""The receipt's content and layout in Kazakh and Russian (Kazakh first, the state language): ``ReceiptData``
(every value a receipt shows) and ``CopySpec`` (how one copy is printed) become a printer ``Document``. The offence
is named in Kazakh where the jurisdiction's dataset has a sourced Kazakh title, then in Russian. Pure, shared by
the device (which prints it) and the server (which renders the same receipt from the synced rows for an evidence
export)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from core.fines import FineError, load_jurisdiction
from core.iin import mask_iin
from core.money import Money, currency
from core.receipt_code import ReceiptClaim
from core.receipt_document import Align, Document, Feed, QrCode, Text
from core.terminal_time import terminal_time_text

RULE = "-" * 32
COPY_TITLES = {
    1: ("ҚҰҚЫҚ БҰЗУШЫНЫҢ ДАНАСЫ (1/2)", "Экземпляр нарушителя"),
    2: ("ХАТТАМАҒА АРНАЛҒАН ДАНА (2/2)", "Экземпляр к протоколу"),
}
NAME_CHECK = {
    "MATCH": "сәйкес / совпадает",
    "PROBABLE": "инспектор растаған / вероятно, подтверждено инспектором",
    "MISMATCH": "сәйкес емес / не совпадает",
    "UNAVAILABLE": "аты оқылмады / имя не считано",
}
APPROVED = "МАҚҰЛДАНДЫ / ОДОБРЕНО / APPROVED"
PAID_LABEL = "ТӨЛЕНДІ / ОПЛАЧЕНО"


def duplicate_lines(number: int, printed_at: str) -> tuple[str, str, str]:
    """The marks of a reprint, Kazakh first: what it is, its number, when it was printed."""
    return (
        f"КӨШІРМЕ / ДУБЛИКАТ / DUPLICATE № {number}",
        "Түпнұсқаның қайта басылған көшірмесі / Повторная печать оригинала",
        f"Қайта басу / Повторная печать: {printed_at}",
    )


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
    article_title_kk: str = ""

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
    jurisdiction: str
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


def kazakh_title(protocol: ProtocolRow) -> str:
    """The offence's sourced Kazakh title from the jurisdiction's dataset ("" where none is sourced)."""
    try:
        return load_jurisdiction(protocol.jurisdiction).article(protocol.article).title_kk or ""
    except (FineError, LookupError):
        return ""


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
        article_title_kk=kazakh_title(protocol),
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
    holder = data.cardholder_name or "оқылмады / не считано"
    title = f"{data.article_title_kk} / {data.article_title}" if data.article_title_kk else data.article_title
    return [
        ("Хаттама / Протокол №", data.protocol_number),
        ("Күні / Дата", local.strftime("%d.%m.%Y")),
        ("Уақыты / Время", local.strftime("%H:%M")),
        ("Орны / Место", data.place),
        ("Бап / Статья", f"{data.article} ӘҚБтК / КоАП РК"),
        ("Құқық бұзушылық / Нарушение", title),
        ("Айыппұл / Штраф", f"{data.fine_units} АЕК / МРП"),
        (f"АЕК / МРП {data.unit_year}", money_text(data.unit_value)),
        ("Толық сомасы / Полная сумма", money_text(data.full_amount)),
        ("Жеңілдік / Скидка", data.legal_basis),
        (PAID_LABEL, money_text(data.amount_paid)),
        ("Жүргізуші / Водитель", data.driver_name),
        ("ЖСН / ИИН", iin),
        ("Мемлекеттік нөмір / Госномер", data.vehicle_plate),
        ("Инспектор / Инспектор", data.officer_name),
        ("Белгі № / Жетон", data.officer_badge),
        ("Құрылғы / Устройство", data.device_id),
        ("Карта / Карта", f"{data.card_scheme} {data.masked_pan}".strip()),
        ("Ұстаушы / Держатель", holder),
        ("Атын тексеру / Проверка имени", NAME_CHECK.get(data.name_check, data.name_check)),
        ("Авторизация коды / Код авторизации", data.auth_code),
        ("Түбіртек / Чек / Trace", f"{data.receipt_no} / {data.trace_no}"),
        ("Терминал / Терминал", data.terminal_id),
        (
            "Терминал уақыты / Время терминала",
            terminal_time_text(data.terminal_time, data.approved_at, spec.timezone),
        ),
    ]


def render_copy(data: ReceiptData, spec: CopySpec) -> Document:
    """One copy as a printer Document."""
    if spec.copy_no not in COPY_TITLES:
        raise ValueError(f"copy must be 1 or 2, got {spec.copy_no}")
    tz = ZoneInfo(spec.timezone)
    title_kz, title_ru = COPY_TITLES[spec.copy_no]
    blocks: list[Text | QrCode | Feed] = [
        Text("ҚР ІІМ / МВД РК", Align.CENTER, bold=True),
        Text(data.unit, Align.CENTER),
        Text("Әкімшілік айыппұлды төлеу туралы түбіртек", Align.CENTER, bold=True),
        Text("Квитанция об уплате административного штрафа", Align.CENTER),
        Text(title_kz, Align.CENTER, bold=True),
        Text(title_ru, Align.CENTER),
    ]
    if spec.duplicate_no:
        what, sentence, when = duplicate_lines(
            spec.duplicate_no, f"{spec.printed_at.astimezone(tz):%d.%m.%Y %H:%M}"
        )
        blocks += [
            Text(what, Align.CENTER, bold=True),
            Text(sentence, Align.CENTER),
            Text(when, Align.CENTER),
        ]
    blocks.append(Text(RULE, Align.CENTER))
    for label, value in fields(data, spec):
        if label == PAID_LABEL:
            blocks += [Text(label, Align.CENTER, bold=True), Text(value, Align.CENTER, bold=True, large=True)]
            blocks.append(
                Text(
                    "Валюта / Валюта: "
                    + f"{data.amount_paid.currency.code} ({data.amount_paid.currency.numeric})"
                )
            )
        else:
            blocks.append(Text(f"{label}: {value}"))
        if label in ("Жеңілдік / Скидка", PAID_LABEL, "Құрылғы / Устройство"):
            blocks.append(Text(RULE, Align.CENTER))
    blocks += [
        Text(APPROVED, Align.CENTER, bold=True),
        Text(RULE, Align.CENTER),
        Text("Жеңілдікпен төлеу құқық бұзушылықты мойындауды білдіреді және істі аяқтайды (ӘҚБтК 810-бабы)."),
        Text("Оплата со скидкой означает признание правонарушения и завершает дело (ст. 810 КоАП РК)."),
        Text("Шағымдану және тексеру: eGov, ЕРАП. Көшірмені инспектор немесе жол полициясы береді."),
        Text("Обжалование и проверка: eGov, ERAP. Дубликат выдаёт инспектор или ДП."),
        Text("Түпнұсқалығын тексеру / Проверить подлинность:", Align.CENTER),
        QrCode(spec.verify_url),
        Text(
            f"{spec.software_version} · {spec.printed_at.astimezone(tz):%d.%m.%Y %H:%M} · дана / копия {spec.copy_no}/2",
            Align.CENTER,
        ),
        Feed(1),
    ]
    return Document(tuple(blocks))
