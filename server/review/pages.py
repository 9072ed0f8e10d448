"""The review pages as HTML: login, protocol search and the protocol page (offence, fine, payment with the
masked card number only, receipts, own-card check, bookmarks, footage with gaps, and the access audit)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from core.money import Money, currency
from server.db.payment_attempts import PaymentAttemptCopy, PaymentSettlementCopy
from server.db.protocols import Officer, Payment, Protocol
from server.db.supervisors import AccessAudit
from server.db.sync import Bookmark, OwnCardCheck, ReceiptEvent
from server.review.footage import FootageSegment, FootageWindow
from server.review.html import Markup, facts, fmt, join, page, table, when

STATUS_LABELS = {
    "stored": "загружен / uploaded",
    "uploading": "загружается / upload in progress",
    "not_uploaded": "ещё не загружен / not uploaded yet",
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


def gap_cause(reason: str) -> str:
    label = GAP_CAUSES.get(reason)
    return f"{label} ({reason})" if label else reason


def size_text(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{size / 1000:.0f} kB"


def money(minor: int, code: str) -> str:
    try:
        return Money(minor, currency(code)).format().replace("\u00a0", " ")
    except (ValueError, KeyError):
        return f"{minor} (minor units, {code})"


def masked_pan(value: str) -> str:
    """Only the last four digits of a card number are ever shown, whatever the device sent."""
    digits = re.sub(r"\D", "", value)
    return f"•••• {digits[-4:]}" if len(digits) >= 4 else "—"


def content_url(device_id: str, seq: int, protocol_number: str) -> str:
    return (
        f"/api/video/segments/{quote(device_id, safe='')}/{seq}/content"
        f"?protocol={quote(protocol_number, safe='')}"
    )


def protocol_url(number: str) -> str:
    """The protocol's page: the number percent-encoded as one path segment, or as a query parameter when it
    is a dot segment that browsers would resolve away."""
    if number in (".", ".."):
        return f"/review/protocol?number={quote(number, safe='')}"
    return f"/review/protocols/{quote(number, safe='')}"


def login_page(csrf: str, error: str = "", next_url: str = "") -> Markup:
    problem = fmt('<p class="error">{e}</p>', e=error) if error else Markup("")
    body = fmt(
        '{problem}<form method="post" action="/review/login" class="search">'
        '<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">'
        '<label>Логин / Login<input name="login" autocomplete="username" required maxlength="64"></label>'
        '<label>Пароль / Password<input name="password" type="password" autocomplete="current-password" '
        'required maxlength="1024"></label><button type="submit">Войти / Log in</button></form>',
        problem=problem,
        csrf=csrf,
        next=next_url,
    )
    return page("Вход / Log in", body)


@dataclass(frozen=True)
class SearchQuery:
    number: str = ""
    plate: str = ""
    badge: str = ""
    day: date | None = None

    @property
    def empty(self) -> bool:
        return not (self.number or self.plate or self.badge or self.day)


def search_page(
    query: SearchQuery,
    results: Sequence[tuple[Protocol, str | None]] | None,
    more: bool,
    who: str,
    csrf: str,
    error: str = "",
) -> Markup:
    form = fmt(
        '<form method="get" action="/review/protocols" class="search">'
        '<label>Номер протокола / Protocol number<input name="number" value="{number}" maxlength="32"></label>'
        '<label>Госномер / Plate<input name="plate" value="{plate}" maxlength="16"></label>'
        '<label>Жетон инспектора / Officer badge<input name="badge" value="{badge}" maxlength="32"></label>'
        '<label>Дата / Date<input name="date" type="date" value="{day}"></label>'
        '<button type="submit">Найти / Search</button></form>',
        number=query.number,
        plate=query.plate,
        badge=query.badge,
        day=query.day.isoformat() if query.day else "",
    )
    parts: list[object] = [fmt('<p class="error">{e}</p>', e=error) if error else "", form]
    if results is not None:
        rows = [
            (
                fmt('<a href="{u}">{n}</a>', u=protocol_url(p.number), n=p.number),
                when(p.offence_at),
                p.article,
                p.vehicle_plate,
                p.driver_name,
                f"{p.officer_badge} {officer or ''}".strip(),
                p.status,
            )
            for p, officer in results
        ]
        parts.append(fmt("<h2>Найдено / Found: {n}</h2>", n=f"{len(rows)}{'+' if more else ''}"))
        parts.append(
            table(
                [
                    "Протокол",
                    "Время / Time",
                    "Статья",
                    "Госномер",
                    "Водитель / Driver",
                    "Инспектор",
                    "Статус",
                ],
                rows,
                "ничего не найдено / no protocol matches",
            )
        )
        if more:
            parts.append(
                fmt(
                    '<p class="empty">{t}</p>',
                    t="Показаны первые результаты; уточните поиск / narrow the search",
                )
            )
    return page("Поиск протокола / Protocol search", join(parts), who, csrf)


def _segment(seg: FootageSegment, number: str) -> Markup:
    integrity: list[object] = [fmt("SHA-256 <code>{h}</code>", h=seg.sha256[:16] + "…")]
    if seg.hash_agrees is False:
        integrity.append(
            fmt(
                ' <span class="bad">{t}</span>',
                t="хэш не совпадает с метаданными / hash differs from synced metadata",
            )
        )
    if seg.linked_prev is False:
        integrity.append(
            fmt(' <span class="bad">{t}</span>', t="цепочка не подтверждена / chain link not verified yet")
        )
    if seg.repaired:
        integrity.append(" · восстановлен после сбоя / repaired after a crash")
    video = Markup("")
    if seg.playable:
        video = fmt(
            '<video controls preload="none" src="{src}"></video>',
            src=content_url(seg.device_id, seg.seq, number),
        )
    return fmt(
        '<div class="segment" id="seg-{dev}-{seq}"><strong>#{seq}</strong> {start} – {end} · '
        '<span class="status-{status}">{label}</span> · {size} · {integrity}{video}</div>',
        dev=seg.device_id,
        seq=seg.seq,
        start=when(seg.started_at),
        end=when(seg.ended_at),
        status=seg.status,
        label=STATUS_LABELS[seg.status],
        size=size_text(seg.size_bytes),
        integrity=join(integrity),
        video=video,
    )


def _window(w: FootageWindow, number: str) -> Markup:
    if w.around_offence:
        why: object = "закладок нет: время правонарушения / no bookmark: around the offence time"
    else:
        why = "закладки / bookmarks: " + ", ".join(f"{b.label} {when(b.at)}" for b in w.bookmarks)
    items: list[tuple[object, Markup]] = [(s.started_at, _segment(s, number)) for s in w.segments]
    items += [
        (
            g.started_at,
            fmt(
                '<div class="gap">Перерыв записи / recording gap {s} – {e}: <strong>{r}</strong></div>',
                s=when(g.started_at),
                e=when(g.ended_at),
                r=gap_cause(g.reason),
            ),
        )
        for g in w.gaps
    ]
    items += [
        (
            h.start,
            fmt(
                '<div class="hole">{s} – {e}: нет данных о записи (ещё не синхронизировано?) / '
                "no segment or gap known for this time (not synced yet?)</div>",
                s=when(h.start),
                e=when(h.end),
            ),
        )
        for h in w.unexplained
    ]
    items.sort(key=lambda i: i[0])  # type: ignore[arg-type, return-value]
    body = join(m for _, m in items) or fmt('<p class="empty">{t}</p>', t="нет записей / no footage known")
    more = (
        fmt(
            '<p class="error">{t}</p>',
            t="Слишком много сегментов; показаны первые / too many segments, first ones shown",
        )
        if w.truncated
        else ""
    )
    return fmt(
        '<section class="window"><h3>{dev}: {s} – {e}</h3><p>{why}</p>{body}{more}</section>',
        dev=w.device_id,
        s=when(w.start),
        e=when(w.end),
        why=why,
        body=body,
        more=more,
    )


def protocol_page(
    p: Protocol,
    officer: Officer | None,
    payment: Payment | None,
    checks: Sequence[OwnCardCheck],
    receipts: Sequence[ReceiptEvent],
    bookmarks: Sequence[Bookmark],
    windows: Sequence[FootageWindow],
    audit: Sequence[AccessAudit],
    who: str,
    csrf: str,
    attempts: Sequence[PaymentAttemptCopy] = (),
    settlements: Sequence[PaymentSettlementCopy] = (),
) -> Markup:
    offence = facts(
        [
            ("Статья / Article", f"{p.article} {p.article_title}".strip()),
            ("Время / Time (UTC)", when(p.offence_at)),
            ("Место / Place", p.place or "—"),
            (
                "Координаты / Position",
                f"{p.lat:.6f}, {p.lon:.6f}" if p.lat is not None and p.lon is not None else "—",
            ),
            ("Водитель / Driver", p.driver_name),
            ("ИИН / IIN", p.driver_iin),
            ("Госномер / Plate", p.vehicle_plate),
            ("Инспектор / Officer", f"{p.officer_badge} {officer.full_name if officer else ''}".strip()),
            ("Устройство / Device", p.device_id),
            ("Статус / Status", p.status),
        ]
    )
    fine = facts(
        [
            (
                "Штраф / Fine",
                f"{money(p.full_minor, p.currency)} ({p.fine_units} × {money(p.unit_value_minor, p.currency)}, {p.unit_year})",
            ),
            ("Со скидкой / Reduced fine", money(p.reduced_minor, p.currency)),
            ("Скидка до / Reduced until", p.discount_deadline.isoformat()),
            ("Основание / Legal basis", p.legal_basis or "—"),
        ]
    )
    if payment is None:
        tried = f" — попыток / attempts: {len(attempts)}" if attempts else ""
        paid: Markup = fmt('<p class="empty">{t}</p>', t=f"оплаты нет / not paid{tried}")
    else:
        paid = facts(
            [
                ("Сумма / Amount", money(payment.amount_minor, payment.currency)),
                ("Статус / Status", payment.status),
                ("Карта / Card", f"{payment.card_scheme} {masked_pan(payment.masked_pan)}".strip()),
                ("Держатель / Cardholder", payment.cardholder_name or "—"),
                ("Проверка имени / Name check", f"{payment.name_check} {payment.name_check_reason}".strip()),
                ("Код авторизации / Auth code", payment.auth_code or "—"),
                ("Терминал / Terminal, trace", f"{payment.terminal_id} / {payment.trace_no}"),
                ("Оплачено / Approved at", when(payment.approved_at)),
            ]
        )
    check_rows = [
        (
            when(c.checked_at),
            c.result,
            c.cardholder_name or "—",
            c.driver_name,
            c.reason,
            c.attested_by or "—",
        )
        for c in checks
    ]
    attempt_rows = [
        (
            when(a.started_at),
            ATTEMPT_STATES.get(a.state, a.state),
            money(a.amount_minor, a.currency),
            f"{a.card_scheme} {masked_pan(a.masked_pan)}".strip() if a.masked_pan else "—",
            f"{a.result_text} (0x{a.result_code:02X})" if a.result_code is not None else "—",
            a.reason or "—",
            f"{a.device_id} · {a.attempt_id[:8]}",
        )
        for a in attempts
    ]
    settlement_rows = [
        (
            when(x.settled_at),
            x.attempt_id[:8],
            "списано / charged" if x.outcome == "charged" else "не списано / not charged",
            SETTLEMENT_METHODS.get(x.method, x.method),
            x.evidence,
            x.decided_by or "—",
            x.reason or "—",
        )
        for x in settlements
    ]
    receipt_rows = [(when(r.occurred_at), r.copy_no, r.event, r.detail or "") for r in receipts]
    bookmark_rows = [
        (when(b.at), when(b.ended_at), b.label, b.device_id, b.officer_badge or "—") for b in bookmarks
    ]
    audit_rows = [
        (
            when(a.at),
            a.supervisor_login,
            a.action,
            f"{a.device_id} #{a.seq}" if a.device_id is not None else (a.protocol_number or ""),
            a.client,
            a.session_ref,
        )
        for a in audit
    ]
    body = join(
        [
            fmt("<h2>{t}</h2>", t="Правонарушение / Offence"),
            offence,
            fmt("<h2>{t}</h2>", t="Штраф / Fine"),
            fine,
            fmt("<h2>{t}</h2>", t="Оплата / Payment"),
            paid,
            fmt("<h2>{t}</h2>", t="Попытки оплаты / Payment attempts"),
            table(
                ["Начало / Started", "Состояние / State", "Сумма", "Карта", "Ответ терминала / Terminal result",
                 "Причина / Reason", "Устройство · попытка"],
                attempt_rows,
                "попыток нет / no payment attempt synced",
            ),
            fmt("<h2>{t}</h2>", t="Урегулирование / Attempts in doubt settled"),
            table(
                ["Когда / When", "Попытка", "Итог / Outcome", "Основание / Method", "Доказательства / Evidence",
                 "Решил / Decided by", "Причина / Reason"],
                settlement_rows,
                "нет / none",
            ),
            fmt("<h2>{t}</h2>", t="Проверка своей карты / Own-card check"),
            table(["Время", "Результат", "Держатель", "Водитель", "Причина", "Подтвердил"], check_rows),
            fmt("<h2>{t}</h2>", t="Чеки / Receipts"),
            table(["Время", "Экз. / Copy", "Событие / Event", "Подробности"], receipt_rows),
            fmt("<h2>{t}</h2>", t="Закладки / Bookmarks"),
            table(["Начало / At", "Конец / End", "Метка / Label", "Устройство", "Жетон"], bookmark_rows),
            fmt("<h2>{t}</h2>", t="Видео / Footage"),
            join(_window(w, p.number) for w in windows),
            fmt("<h2>{t}</h2>", t="Журнал доступа / Access audit"),
            table(
                ["Время / When", "Кто / Who", "Действие / Action", "Что / What", "Клиент", "Сессия"],
                audit_rows,
            ),
        ]
    )
    return page(f"Протокол / Protocol {p.number}", body, who, csrf)


def message_page(title: str, text: str, who: str | None = None, csrf: str | None = None) -> Markup:
    return page(
        title,
        fmt(
            '<p class="error">{t}</p><p><a href="/review/protocols">{b}</a></p>', t=text, b="← поиск / search"
        ),
        who,
        csrf,
    )
