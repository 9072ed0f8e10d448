"""The article picker of a new stop: every article of the jurisdiction's catalogue with its title in the
officer's language (Russian where no Kazakh text is sourced), the fine, the reduced fine and the last day of
the discount if drawn up today, or why it cannot be paid on the spot. Searchable by number or by words in
any of the three languages (``search`` holds them all, lower case)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core.fines import FineError, load_jurisdiction, reduced_fine
from core.fines.jurisdiction import Article, Sanction
from edge.officer_app.i18n import Translator
from edge.stops import holiday_calendar


@dataclass(frozen=True)
class ArticleChoice:
    code: str
    title: str
    search: str
    payable: bool
    fine: str  # the full fine, money as text ("" when there is none)
    reduced: str
    deadline: str
    why_not: str  # why it cannot be paid on the spot, in the officer's language


def article_title(article: Article, lang: str) -> str:
    """The article's title in ``lang``; Russian stands in where no Kazakh text is sourced."""
    if lang == "kk":
        return article.title_kk or article.title_ru or article.title_en
    if lang == "ru":
        return article.title_ru or article.title_en
    return article.title_en


def choices(t: Translator, jurisdiction: str, today: date, holidays: list[date]) -> list[ArticleChoice]:
    jur = load_jurisdiction(jurisdiction)
    calendar = holiday_calendar(jurisdiction, holidays)
    out: list[ArticleChoice] = []
    for a in jur.articles:
        words = " ".join(x for x in (a.code, a.article, a.title_kk, a.title_ru, a.title_en) if x)
        fine = reduced = deadline = why = ""
        payable = False
        try:
            full, _unit = jur.full_fine(a, today)
            fine = t.money(full)
        except FineError:
            pass
        if a.sanction is Sanction.NON_MONETARY:
            why = t("reason.non_monetary")
        elif not a.simplified or a.sanction is not Sanction.FINE:
            why = t("reason.warning_or_fine")
        else:
            try:
                r = reduced_fine(jur, a, today, today, calendar)
                reduced, deadline, payable = t.money(r.due), t.day(r.deadline), True
            except FineError as exc:
                why = t("reason.rules", detail=str(exc))
        out.append(
            ArticleChoice(
                a.code, article_title(a, t.lang), words.lower(), payable, fine, reduced, deadline, why
            )
        )
    return out
