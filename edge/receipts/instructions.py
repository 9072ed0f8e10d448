"""What the officer is told when receipts cannot be printed, in Russian and Kazakh (the payment always stands)."""

from __future__ import annotations

from dataclasses import dataclass

PAYMENT_STANDS_RU = "Платёж проведён и сохранён — повторно НЕ оплачивать."
PAYMENT_STANDS_KZ = "Төлем өтті және сақталды — қайта ТӨЛЕМЕҢІЗ."


@dataclass(frozen=True, slots=True)
class OfficerInstruction:
    code: str  # paper_end | cover_open | offline | unconfirmed | printer_error | near_end | unknown_status
    text_ru: str
    text_kz: str
    blocking: bool  # printing cannot continue until the officer acts


def _copies(pending: list[int]) -> str:
    return ", ".join(str(c) for c in pending) or "-"


def instruction_for(reason: str, pending: list[int]) -> OfficerInstruction:
    """The instruction for a failed copy: fix the printer, then press "Допечатать" to print duplicates."""
    todo_ru = f"Затем нажмите «Допечатать»: копия {_copies(pending)} будет напечатана с пометкой ДУБЛИКАТ."
    todo_kz = (
        f"Содан кейін «Қайта басу» батырмасын басыңыз: {_copies(pending)}-дана КӨШІРМЕ ретінде басылады."
    )
    if reason.startswith("paper end"):
        return OfficerInstruction(
            "paper_end",
            f"Закончилась бумага. {PAYMENT_STANDS_RU} Вставьте новый рулон и закройте крышку. {todo_ru}",
            f"Қағаз бітті. {PAYMENT_STANDS_KZ} Жаңа орам салып, қақпақты жабыңыз. {todo_kz}",
            True,
        )
    if reason.startswith("cover open"):
        return OfficerInstruction(
            "cover_open",
            f"Открыта крышка принтера. {PAYMENT_STANDS_RU} Закройте крышку. {todo_ru}",
            f"Принтер қақпағы ашық. {PAYMENT_STANDS_KZ} Қақпақты жабыңыз. {todo_kz}",
            True,
        )
    if reason.startswith("printer error"):
        return OfficerInstruction(
            "printer_error",
            f"Ошибка принтера. {PAYMENT_STANDS_RU} Выключите и включите принтер. {todo_ru}",
            f"Принтер қатесі. {PAYMENT_STANDS_KZ} Принтерді өшіріп, қайта қосыңыз. {todo_kz}",
            True,
        )
    if reason.startswith(("offline", "link error")):
        return OfficerInstruction(
            "offline",
            f"Принтер не отвечает. {PAYMENT_STANDS_RU} Проверьте питание и подключение принтера. {todo_ru}",
            f"Принтер жауап бермейді. {PAYMENT_STANDS_KZ} Принтердің қуаты мен қосылымын тексеріңіз. {todo_kz}",
            True,
        )
    return OfficerInstruction(
        "unconfirmed",
        f"Печать не подтверждена ({reason}). {PAYMENT_STANDS_RU} Проверьте, вышла ли квитанция. {todo_ru}",
        f"Басып шығару расталмады ({reason}). {PAYMENT_STANDS_KZ} Түбіртектің шыққанын тексеріңіз. {todo_kz}",
        True,
    )

