"""Server-side HTML for the review pages without a template engine: every value is escaped unless it is
``Markup`` made here, so text from devices (names, places, labels) can never become markup. Plain CSS, no JS."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime


class Markup(str):
    """Text that is already HTML (built by this module from escaped parts)."""


def esc(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def fmt(template: str, **values: object) -> Markup:
    """``template`` (trusted, written in code) with each ``{name}`` replaced by the escaped value."""
    return Markup(template.format(**{k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[object]) -> Markup:
    return Markup("".join(esc(p) for p in parts))


def when(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%SZ")


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], empty: str = "none") -> Markup:
    body = join(fmt("<tr>{cells}</tr>", cells=join(fmt("<td>{v}</td>", v=c) for c in row)) for row in rows)
    if not body:
        return fmt('<p class="empty">{e}</p>', e=empty)
    head = join(fmt("<th>{h}</th>", h=h) for h in headers)
    return fmt("<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>", head=head, body=body)


def facts(pairs: Iterable[tuple[str, object]]) -> Markup:
    items = join(fmt("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in pairs)
    return fmt("<dl>{items}</dl>", items=items)


def page(title: str, body: Markup, who: str | None = None, csrf: str | None = None) -> Markup:
    """A whole page: header (with the supervisor and a logout form when logged in), then ``body``."""
    account = Markup("")
    if who is not None and csrf is not None:
        account = fmt(
            '<form method="post" action="/review/logout" class="logout">{who} '
            '<input type="hidden" name="csrf" value="{csrf}">'
            '<button type="submit">Выйти / Log out</button></form>',
            who=who,
            csrf=csrf,
        )
    return fmt(
        '<!doctype html><html lang="ru"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} · patrolkit</title><link rel="stylesheet" href="/review/review.css"></head>'
        '<body><header><a href="/review/protocols" class="brand">patrolkit · проверка / review</a>{account}'
        "</header><main><h1>{title}</h1>{body}</main></body></html>",
        title=title,
        account=account,
        body=body,
    )


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1b1f24; background: #f6f7f9; }
header { display: flex; justify-content: space-between; align-items: center; padding: .6rem 1.2rem;
  background: #1f3a5f; color: #fff; }
header a.brand { color: #fff; font-weight: 600; text-decoration: none; }
header form.logout { margin: 0; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: .5rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e2e5ea; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; background: #fff; padding: .6rem; }
dt { color: #555; } dd { margin: 0; }
form.search { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; background: #fff; padding: .8rem; }
label { display: flex; flex-direction: column; font-size: .85rem; color: #444; }
input { font: inherit; padding: .25rem .4rem; }
button { font: inherit; padding: .3rem .8rem; }
.error { background: #fde8e8; border: 1px solid #e0a0a0; padding: .5rem .8rem; }
.empty { color: #666; font-style: italic; }
.segment { background: #fff; border: 1px solid #dde; margin: .6rem 0; padding: .6rem; }
.segment video { width: 100%; max-width: 40rem; background: #000; display: block; }
.status-stored { color: #17622b; } .status-uploading, .status-not_uploaded { color: #8a5a00; }
.gap { background: #fff4e0; border-left: 4px solid #d08a00; padding: .4rem .6rem; margin: .4rem 0; }
.hole { background: #f2f2f2; border-left: 4px solid #999; padding: .4rem .6rem; margin: .4rem 0; }
.bad { color: #a11; font-weight: 600; }
code { font-size: .85em; }
"""
