"""The public receipt verification page ``GET /r/{code}``: is the QR genuine, and what does the server know of it.

The page speaks to the driver who scanned the QR: Kazakh, Russian or English (a Jinja2 template,
``server/templates/receipt_verify.html``), times in the payment's local time, plain labels and no internal
field names; ``?format=json`` keeps the machine form.

Genuine = the code decodes and its Ed25519 signature verifies with the public key registered for the device it
names. A forged or altered code is shown as not genuine. When genuine, the payment is shown as the server has it
once the device has synced it; until then the page says "genuine, not yet synced".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select

from core.money import Money, currency
from core.receipt_code import ReceiptCodeError, decode_receipt_code, verify_signed
from core.signing import BadSignature, public_from_b64
from server.db.devices import Device
from server.db.protocols import Payment

router = APIRouter(tags=["receipts"])


def _money(minor: int, numeric: int) -> str:
    try:
        return Money(minor, currency(numeric)).format().replace("\u00a0", " ")
    except ValueError:
        return f"{minor} (currency {numeric})"


def check_code(request: Request, code: str) -> tuple[int, dict[str, Any]]:
    """The verdict on ``code``: (HTTP status, JSON body)."""
    try:
        signed = decode_receipt_code(code)
    except ReceiptCodeError as exc:
        return 400, {"verdict": "malformed", "genuine": False, "reason": str(exc)}
    claim = signed.claim
    claimed = {
        "device_id": claim.device_id,
        "protocol_number": claim.protocol_no,
        "trace_no": claim.rrn,
        "amount": _money(claim.amount_minor, claim.currency_numeric),
        "amount_minor": claim.amount_minor,
        "currency_numeric": claim.currency_numeric,
        "paid_at": claim.paid_at.isoformat(),
    }
    with request.app.state.sessions() as session:
        device = session.get(Device, claim.device_id)
        if device is None:
            return 404, {
                "verdict": "not_genuine",
                "genuine": False,
                "reason": "unknown device",
                "claim": claimed,
            }
        try:
            verify_signed(signed, public_from_b64(device.public_key_b64))
        except BadSignature:
            return 404, {
                "verdict": "not_genuine",
                "genuine": False,
                "reason": "signature does not verify (forged or altered)",
                "claim": claimed,
            }
        payment = session.scalar(
            select(Payment).where(
                Payment.protocol_number == claim.protocol_no, Payment.device_id == claim.device_id
            )
        )
        body: dict[str, Any] = {"verdict": "genuine", "genuine": True, "claim": claimed, "synced": False}
        if not device.active:
            body["note"] = "the device has since been deactivated"
        if payment is None:
            body["reason"] = "genuine, not yet synced"
            return 200, body
        cur = currency(payment.currency)
        body["synced"] = True
        body["payment"] = {
            "protocol_number": payment.protocol_number,
            "amount": _money(payment.amount_minor, cur.numeric),
            "status": payment.status,
            "trace_no": payment.trace_no,
            "approved_at": payment.approved_at.isoformat(),
        }
        matches = (
            payment.amount_minor == claim.amount_minor
            and cur.numeric == claim.currency_numeric
            and payment.trace_no == claim.rrn
        )
        body["matches_synced_payment"] = matches
        body["reason"] = (
            "genuine; matches the synced payment"
            if matches
            else "genuine signature, but it differs from the synced payment"
        )
        return 200, body


LANGUAGES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)
ZONES = {398: "Asia/Almaty", 981: "Asia/Tbilisi"}  # a payment's local time, by its currency's country


@dataclass(frozen=True)
class Words:
    """What the page says to a driver, in one language."""

    page_title: str
    heading: dict[str, str]
    genuine_synced: str
    genuine_pending: str
    genuine_differs: str
    not_genuine: str
    malformed: str
    deactivated: str
    protocol: str
    amount: str
    paid_at: str
    trace: str
    recorded: str
    recorded_yes: str
    recorded_no: str
    advice_pending: str
    advice_bad: str


WORDS = {
    "kk": Words(
        "Түбіртекті тексеру",
        {
            "genuine": "Түпнұсқа түбіртек",
            "not_genuine": "Түбіртек түпнұсқа емес",
            "malformed": "Код оқылмады",
        },
        "Бұл түбіртекті полиция құрылғысы берген, ал төлем полиция серверінде тіркелген.",
        "Бұл түбіртекті полиция құрылғысы берген. Төлем серверге әлі келмеді: бұл бірнеше сағатқа дейін қалыпты.",
        "Түбіртектің қолтаңбасы дұрыс, бірақ ол серверде тіркелген төлемнен өзгеше.",
        "Бұл код полиция құрылғысы берген түбіртекке сәйкес келмейді (қолдан жасалған немесе өзгертілген).",
        "QR-кодты оқу мүмкін болмады: оны қайта сканерлеңіз.",
        "Түбіртекті берген құрылғы кейін қызметтен шығарылды.",
        "Хаттама №",
        "Төленген сома",
        "Төлем уақыты",
        "Түбіртек / Чек / Trace",
        "Серверде",
        "тіркелген",
        "әлі жоқ",
        "Бірнеше сағаттан кейін қайта тексеріңіз. Сұрақ болса, eGov арқылы жүгініңіз.",
        "Бұл түбіртекке сенбеңіз. 102 немесе eGov арқылы хабарлаңыз.",
    ),
    "ru": Words(
        "Проверка квитанции",
        {
            "genuine": "Подлинная квитанция",
            "not_genuine": "Квитанция не подлинная",
            "malformed": "Код не читается",
        },
        "Эту квитанцию выдало устройство полиции, и платёж записан на сервере полиции.",
        "Эту квитанцию выдало устройство полиции. Платёж ещё не дошёл до сервера: это нормально в течение нескольких часов.",
        "Подпись квитанции верна, но квитанция расходится с платежом, записанным на сервере.",
        "Этот код не соответствует квитанции, выданной устройством полиции (подделан или изменён).",
        "QR-код не удалось прочитать: отсканируйте его ещё раз.",
        "Устройство, выдавшее квитанцию, с тех пор выведено из работы.",
        "Протокол №",
        "Оплачено",
        "Время оплаты",
        "Чек / Trace",
        "На сервере",
        "записан",
        "ещё нет",
        "Проверьте ещё раз через несколько часов. С вопросами обращайтесь через eGov.",
        "Не доверяйте этой квитанции. Сообщите по номеру 102 или через eGov.",
    ),
    "en": Words(
        "Receipt check",
        {
            "genuine": "Genuine receipt",
            "not_genuine": "Not a genuine receipt",
            "malformed": "Code not readable",
        },
        "This receipt was issued by a police device, and the payment is recorded on the police server.",
        "This receipt was issued by a police device. The payment has not reached the server yet: that is normal for a few hours.",
        "The receipt's signature is right, but it differs from the payment recorded on the server.",
        "This code does not belong to a receipt issued by a police device (forged or altered).",
        "The QR code could not be read: scan it again.",
        "The device that issued the receipt has since been taken out of service.",
        "Protocol No.",
        "Amount paid",
        "Paid at",
        "Receipt / Trace",
        "On the server",
        "recorded",
        "not yet",
        "Check again in a few hours. With questions, turn to eGov.",
        "Do not rely on this receipt. Report it on 102 or through eGov.",
    ),
}


def _language(request: Request, asked: str | None) -> str:
    """The language asked for (``?lang=``), else the browser's first of ours, else Kazakh."""
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "")[:200].split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "kk"


def _local(at: datetime, currency_numeric: int) -> str:
    local = at.astimezone(ZoneInfo(ZONES.get(currency_numeric, "Asia/Almaty")))
    return f"{local:%d.%m.%Y %H:%M}"


def _page(body: dict[str, Any], lang: str) -> str:
    """The page for a driver: the verdict and its meaning, the receipt's facts with plain labels, local times."""
    w = WORDS[lang]
    verdict = body["verdict"]
    facts: list[tuple[str, str]] = []
    advice = ""
    if verdict == "genuine":
        claim = body["claim"]
        paid_at = datetime.fromisoformat(claim["paid_at"])
        facts = [
            (w.protocol, claim["protocol_number"]),
            (w.amount, claim["amount"]),
            (w.paid_at, _local(paid_at, claim["currency_numeric"])),
            (w.trace, claim["trace_no"]),
            (w.recorded, w.recorded_yes if body["synced"] else w.recorded_no),
        ]
        if not body["synced"]:
            explanation, advice = w.genuine_pending, w.advice_pending
        elif body.get("matches_synced_payment"):
            explanation = w.genuine_synced
        else:
            explanation, advice = w.genuine_differs, w.advice_bad
        if "note" in body:
            explanation += " " + w.deactivated
    elif verdict == "not_genuine":
        explanation, advice = w.not_genuine, w.advice_bad
    else:
        explanation = w.malformed
    return TEMPLATES.get_template("receipt_verify.html").render(
        lang=lang,
        languages=LANGUAGES,
        w=w,
        verdict=verdict,
        explanation=explanation,
        facts=facts,
        advice=advice,
    )


@router.get("/r/{code}", response_model=None)
def verify_receipt(
    request: Request, code: str, format: str = "html", lang: Literal["kk", "ru", "en"] | None = None
) -> Response:
    """Public verification page of a receipt's QR code, for the driver in Kazakh, Russian or English
    (``?lang=``; else the browser's language); ``?format=json`` for machines."""
    status, body = check_code(request, code)
    request.app.state.metrics.receipt_verifications.labels(body["verdict"]).inc()
    if format == "json":
        return JSONResponse(body, status_code=status)
    return HTMLResponse(_page(body, _language(request, lang)), status_code=status)
