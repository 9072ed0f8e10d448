"""What the workspace says about states, causes and events: in Russian (or Kazakh) with English, never a
raw code or JSON. Each table maps a synced value to its words; an unknown value is shown as it came, marked."""

from __future__ import annotations

import json
import re
from typing import Any

SEGMENT_STATUS = {
    "stored": "загружен / uploaded",
    "uploading": "загружается / upload in progress",
    "not_uploaded": "записан, ещё не загружен / recorded, not uploaded yet",
    "deleted": "удалён по сроку хранения / deleted by retention",
}

GAP_CAUSES = {
    "recorder_crash": "сбой регистратора / recorder crashed",
    "power_loss": "потеря питания / power loss",
    "recorder_stopped": "регистратор остановлен / recorder stopped",
    "device_process_died": "сбой программы устройства / device process died",
    "camera_error": "ошибка камеры / camera lost",
    "disk_full": "нет места / disk full",
    "encoder_error": "ошибка кодирования / encoder error",
}

ATTEMPT_STATES = {
    "started": "начата / started",
    "card_read": "карта считана / card read",
    "card_failed": "карта не считана / card not read",
    "refused": "карта отклонена проверкой / refused by the own-card check",
    "aborted": "прервана на терминале / aborted on the terminal",
    "abandoned": "брошена до авторизации / abandoned before authorisation",
    "authorising": "авторизация / authorising",
    "result_persisted": "одобрена, сохранена / approved, saved",
    "in_doubt": "под вопросом / in doubt: not known whether charged",
    "paid": "оплачено / paid",
    "declined": "отклонено / declined",
    "reversed": "отменено / reversed, not charged",
    "not_charged": "не списано / not charged",
    "failed": "не состоялась / failed before any charge",
}

SETTLEMENT_METHODS = {
    "repeat_receipt": "последний чек терминала / the terminal's last receipt (Repeat Receipt)",
    "terminal_result": "результат, присланный терминалом / the result the terminal sent again",
    "end_of_day": "итоги смены терминала / the terminal's end-of-day totals",
    "decision": "решение / a decision",
}

SETTLEMENT_OUTCOMES = {"charged": "списано / charged", "not_charged": "не списано / not charged"}

NAME_CHECK = {
    "MATCH": "совпадает / matches",
    "PROBABLE": "вероятно, подтвердил инспектор / probable, confirmed by the officer",
    "MISMATCH": "не совпадает / does not match",
    "UNAVAILABLE": "имя с карты не считано / no name on the card",
    "match": "совпадает / matches",
}

PROTOCOL_STATUS = {
    "open": "не оплачен / open",
    "paid": "оплачен / paid",
    "cancelled": "отменён / cancelled",
}

PAYMENT_STATUS = {"approved": "одобрен / approved", "reversed": "отменён / reversed"}

COPIES = {
    1: "экз. 1, водителю / copy 1, the driver's",
    2: "экз. 2, к протоколу / copy 2, for the protocol",
}

RECEIPT_EVENTS = {
    "queued": "поставлен в очередь печати / queued for printing",
    "printing": "отправлен на принтер / sent to the printer",
    "printed": "напечатан / printed",
    "failed": "не напечатан / not printed",
    "reprint_requested": "запрошен дубликат / duplicate requested",
    "cancelled": "отменён / cancelled",
}

PRINTER_REASONS = {
    "paper end": "закончилась бумага / paper ran out",
    "cover open": "открыта крышка / cover open",
    "printer error": "ошибка принтера / printer error",
    "offline": "принтер не отвечает / printer offline",
    "paper near end": "бумага заканчивается / paper near its end",
}

BOOKMARKS = {
    "stop": "начало остановки / the stop begins",
    "payment": "оплата / payment",
    "own_card_check": "проверка своей карты / own-card check",
}


def unknown(value: str) -> str:
    return f"{value} (?)"


def gap_cause(reason: str) -> str:
    label = GAP_CAUSES.get(reason)
    return f"{label}" if label else unknown(reason)


def attempt_state(state: str) -> str:
    return ATTEMPT_STATES.get(state, unknown(state))


def copy_words(copy_no: int) -> str:
    return COPIES.get(copy_no, f"экз. {copy_no} / copy {copy_no}")


def _printer_reason(reason: str) -> str:
    for prefix, words in PRINTER_REASONS.items():
        if reason.startswith(prefix):
            rest = reason[len(prefix) :].strip(" ()")
            return words + (f" ({rest})" if rest else "")
    return reason


def receipt_event(event: str, copy_no: int, detail: str | None) -> str:
    """One receipt job event in words: which copy, what happened, duplicate number and why it failed.
    ``detail`` is the device's JSON (state, duplicate_no, reason, bytes_sent, printer status)."""
    parts = [copy_words(copy_no), RECEIPT_EVENTS.get(event, unknown(event))]
    info: dict[str, Any] = {}
    if detail:
        try:
            loaded = json.loads(detail)
            info = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            parts.append(detail[:200])
    duplicate = info.get("duplicate_no")
    if isinstance(duplicate, int) and duplicate > 0:
        parts.append(f"дубликат № {duplicate} / duplicate no. {duplicate}")
    reason = info.get("reason")
    if isinstance(reason, str) and reason.strip():
        parts.append(_printer_reason(reason.strip()))
    printer = info.get("printer")
    if isinstance(printer, dict) and event == "failed":
        paper = printer.get("paper")
        if paper == "end":
            parts.append(PRINTER_REASONS["paper end"])
    return " — ".join(dict.fromkeys(parts))


def terminal_result(code: int | None, text: str) -> str:
    """The terminal's result code as the device put it in words, with the code itself (hex)."""
    if code is None:
        return "—"
    words = text or "код терминала / terminal code"
    return f"{words} (0x{code:02X})"


def masked_pan(value: str) -> str:
    """Only the last four digits of a card number are ever shown, whatever the device sent."""
    digits = re.sub(r"\D", "", value)
    return f"•••• {digits[-4:]}" if len(digits) >= 4 else "—"
