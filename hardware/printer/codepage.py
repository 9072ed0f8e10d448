"""Code pages for Russian and Kazakh text: the python-escpos RK1048 patch, ESC t numbers and the Russified fallback."""

from __future__ import annotations

from escpos import codepages

# escpos-printer-db lists RK1048 with only an iconv name, so python-escpos cannot encode it and prints "?"
# for every Kazakh letter. Python's own codec for the same table is "kz1048" (alias "rk1048").
if "python_encode" not in codepages.CodePages.data["RK1048"]:
    codepages.CodePages.data["RK1048"]["python_encode"] = "kz1048"

# ESC t n -> Python codec, for the pages patrolkit uses (Epson numbering, escpos-printer-db).
ESC_T_CODECS: dict[int, str] = {0: "cp437", 17: "cp866", 34: "cp855", 46: "cp1251", 53: "kz1048"}
KZ1048_PAGE = 53
CP866_PAGE = 17

# The lossy mapping some agencies accept when the printer has no Kazakh page (reference §3.3).
RUSSIFIED = str.maketrans(
    {
        "Қ": "К", "қ": "к", "Ә": "А", "ә": "а", "Ү": "У", "ү": "у", "Ұ": "У", "ұ": "у",
        "Ң": "Н", "ң": "н", "Ғ": "Г", "ғ": "г", "Ө": "О", "ө": "о", "Һ": "Х", "һ": "х",
        "І": "I", "і": "i", "₸": "тг", "№": "N",
    }
)  # fmt: skip


def encodable(text: str, codec: str) -> bool:
    """True when every character of ``text`` exists in ``codec``."""
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def for_text_mode(text: str) -> str:
    """Text as sent in a code-page mode: ₸ exists in no single-byte page, so it becomes "тг"."""
    return text.replace("₸", "тг")


def russify(text: str) -> str:
    """Kazakh letters replaced by their nearest Russian letters (lossy; only where policy allows)."""
    return text.translate(RUSSIFIED)
