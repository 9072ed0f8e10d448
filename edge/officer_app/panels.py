"""What a stop's payment and receipts look like now, in words, for the page and for its live updates.

The same function draws the panel for a first view, a reload, a second tab or a live update, from the job the
desk is running (if any) and from the database: so a reload, a kiosk crash or a device restart shows the live
state, or the outcome that recovery found, exactly as the live view would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.money import Money, currency
from edge.db.payment_attempts import PaymentAttempt, PaymentSettlement
from edge.db.payments import Payment
from edge.db.protocols import Protocol
from edge.db.receipts import JobState, ReceiptJob
from edge.officer_app.i18n import Translator
from edge.officer_app.payment_desk import PaymentJob, Question
from edge.payment.attempt_states import RESULT_UNKNOWN, AttemptState
from edge.receipts.instructions import instruction_for

# what the terminal shows (04 FF codes) as message keys
TERMINAL_KEYS = {
    0x0A: "pay.live.insert_card",
    0x68: "pay.live.card_detected",
    0x0C: "pay.live.card_unreadable",
    0x01: "pay.live.enter_pin",
    0x02: "pay.live.enter_pin",
    0x15: "pay.live.wrong_pin",
    0x18: "pay.live.pin_limit",
    0x04: "pay.live.waiting_bank",
    0x0E: "pay.live.please_wait",
    0x17: "pay.live.please_wait",
    0x0B: "pay.live.remove_card",
    0x1D: "pay.live.declined",
}
STEP_KEYS = {
    "check_devices": "pay.live.checking",
    "open_attempt": "pay.live.checking",
    "read_card": "pay.live.insert_card",
    "own_card_check": "pay.live.own_card",
    "authorise": "pay.live.processing",
    "record": "pay.live.approved",
}
RESULT_KEYS = {
    0x6C: "result.no_card",
    0x64: "result.unreadable",
    0x65: "result.unreadable",
    0x78: "result.expired",
    0x79: "result.not_yet_valid",
    0x71: "result.funds",
    0x6F: "result.currency",
    0x9C: "result.busy",
}
SHIFT_STATES = ("open", "paid", "declined", "in_doubt")


def result_words(t: Translator, code: int | None) -> str:
    if code is None:
        return ""
    if 0x01 <= code <= 0x63:
        return t("result.issuer", code=f"{code:02X}")
    key = RESULT_KEYS.get(code)
    return t(key) if key else t("result.other", code=f"{code:02X}")


@dataclass
class DoubtView:
    attempt_id: str
    amount: str
    card: str
    at: str
    found: str  # what recovery learnt, as the terminal's evidence says it


@dataclass
class CopyView:
    copy_no: int
    state: str  # printed | printing | failed | waiting | none
    text: str
    duplicates: int


@dataclass
class ReceiptsView:
    copies: list[CopyView]
    pending: list[int]
    printing: bool
    instruction: str  # paper out and the like: what to do, then Continue
    payment_id: str


@dataclass
class PaymentPanel:
    number: str
    amount: str
    phase: str  # idle | running | question | paid | not_paid | aborted | in_doubt
    headline: str
    detail: str = ""
    question: Question | None = None
    can_cancel: bool = False
    can_pay: bool = False
    doubt: list[DoubtView] = field(default_factory=list)
    receipts: ReceiptsView | None = None
    card: str = ""


def _latest_attempt(s: Session, number: str) -> PaymentAttempt | None:
    return s.scalar(
        select(PaymentAttempt)
        .where(PaymentAttempt.protocol_number == number)
        .order_by(PaymentAttempt.started_at.desc())
        .limit(1)
    )


def receipts_view(t: Translator, s: Session, payment: Payment, printing: bool) -> ReceiptsView:
    jobs = list(
        s.scalars(
            select(ReceiptJob).where(ReceiptJob.payment_id == payment.id).order_by(ReceiptJob.created_at)
        )
    )
    copies: list[CopyView] = []
    pending: list[int] = []
    last_failure = ""
    for copy_no in (1, 2):
        mine = [j for j in jobs if j.copy_no == copy_no]
        done = [j for j in mine if j.state == JobState.CONFIRMED.value]
        dups = sum(1 for j in done if j.duplicate_no > 0)
        if done:
            state = "printed"
        elif not mine:
            state = "waiting" if printing else "none"
        elif mine[-1].state == JobState.FAILED.value:
            state = "failed"
            last_failure = mine[-1].reason
        else:
            state = "printing" if printing else "unconfirmed"
        if not done:
            pending.append(copy_no)
        reason = mine[-1].reason if mine else ""
        copies.append(CopyView(copy_no, state, t(f"receipts.state.{state}", why=reason), dups))
    instruction = ""
    if pending and last_failure and not printing:
        code = instruction_for(last_failure, pending).code
        instruction = t(f"receipts.todo.{code}", copies=", ".join(str(c) for c in pending))
    return ReceiptsView(copies, pending, printing, instruction, payment.id)


def _doubt(t: Translator, rows: list[PaymentAttempt], note: str) -> list[DoubtView]:
    out = []
    for r in rows:
        found = r.reason or note
        out.append(
            DoubtView(
                r.id[:8],
                t.money(Money(r.amount_minor, currency(r.currency))),
                r.masked_pan[-4:] if r.masked_pan else "",
                t.moment(r.authorised_at or r.started_at),
                found,
            )
        )
    return out


def _outcome(
    t: Translator, job: PaymentJob, attempt: PaymentAttempt | None, driver: str
) -> tuple[str, str, str]:
    """(phase, headline, detail) of a finished job."""
    kind = job.error_kind
    code = attempt.result_code if attempt is not None else None
    if job.outcome == "paid" and job.paid is not None:
        if job.paid.found_by:
            return "paid", t("pay.done.recovered_paid"), ""
        return (
            "paid",
            t("pay.done.paid", amount=t.money(job.paid.amount)),
            t("pay.card", last4=job.paid.masked_pan[-4:]),
        )
    if kind == "OwnCardRefused":
        holder = (attempt.cardholder_name if attempt is not None else None) or "—"
        check = attempt.name_check if attempt is not None else None
        if check == "MISMATCH":
            return "not_paid", t("pay.done.refused", holder=holder, driver=driver), t("pay.own_card_rule")
        return "not_paid", t("pay.done.refused_officer"), t("pay.own_card_rule")
    if kind == "PaymentAborted":
        return "aborted", t("pay.done.cancelled"), ""
    if kind == "CardProblem":
        if code == 0x6C:
            return "not_paid", t("pay.done.no_card"), ""
        return "not_paid", t("pay.done.card_failed", why=result_words(t, code)), ""
    if kind == "PaymentDeclined":
        return "not_paid", t("pay.done.declined", why=result_words(t, code)), ""
    if kind == "TerminalNotReady":
        return "not_paid", t("pay.done.terminal_not_ready"), job.message
    if kind == "PrinterNotReady":
        return "not_paid", t("pay.done.printer_not_ready"), job.message
    if kind == "AlreadyPaid":
        return "paid", t("pay.done.already_paid"), ""
    if kind == "CurrencyRejected":
        return "not_paid", t("pay.done.currency"), ""
    if kind in ("NotPayable", "InvalidAmount", "ProtocolNotFound"):
        return "not_paid", t("pay.done.not_payable"), job.message
    if job.outcome == "in_doubt":
        return "in_doubt", t("pay.doubt.headline"), ""
    return "not_paid", t("pay.done.error"), job.message


def _live(t: Translator, job: PaymentJob) -> tuple[str, str]:
    """(phase, headline) of a running job."""
    if job.question is not None:
        return "question", t("pay.live.own_card")
    if job.cancel_requested:
        return "running", t("pay.live.cancelling")
    if job.terminal_code is not None and job.step in ("read_card", "authorise"):
        key = TERMINAL_KEYS.get(job.terminal_code)
        if key is not None:
            return "running", t(key)
    if job.step is None and job.paid is None:
        return "running", t("pay.live.checking")
    if job.paid is not None:
        return "running", t("pay.live.approved")
    return "running", t(STEP_KEYS.get(job.step or "", "pay.live.processing"))


def payment_panel(
    t: Translator, s: Session, number: str, job: PaymentJob | None, note: str = "", printing: bool = False
) -> PaymentPanel | None:
    protocol = s.get(Protocol, number)
    if protocol is None:
        return None
    amount = t.money(Money(protocol.reduced_minor, currency(protocol.currency)))
    payment = s.scalar(select(Payment).where(Payment.protocol_number == number))
    attempt = (
        s.get(PaymentAttempt, job.attempt_id)
        if job is not None and job.attempt_id
        else _latest_attempt(s, number)
    )
    doubt_rows = list(
        s.scalars(
            select(PaymentAttempt).where(
                PaymentAttempt.protocol_number == number,
                PaymentAttempt.state.in_([x.value for x in RESULT_UNKNOWN]),
            )
        )
    )
    receipts = (
        receipts_view(t, s, payment, bool(job and job.printing) or printing) if payment is not None else None
    )
    card = f"****{attempt.masked_pan[-4:]}" if attempt is not None and attempt.masked_pan else ""
    if job is not None and not job.finished and job.outcome is None:
        phase, headline = _live(t, job)
        return PaymentPanel(number, amount, phase, headline, question=job.question, can_cancel=not job.cancel_requested,
                            receipts=receipts, card=card)  # fmt: skip
    if payment is not None:
        found = s.scalar(select(PaymentSettlement).where(PaymentSettlement.payment_id == payment.id))
        headline = (
            t("pay.done.recovered_paid")
            if found is not None
            else t("pay.done.paid", amount=t.money(Money(payment.amount_minor, currency(payment.currency))))
        )
        detail = t("pay.card", last4=payment.masked_pan[-4:]) if payment.masked_pan else ""
        return PaymentPanel(number, amount, "paid", headline, detail, receipts=receipts, card=card)
    if doubt_rows:
        return PaymentPanel(
            number, amount, "in_doubt", t("pay.doubt.headline"), doubt=_doubt(t, doubt_rows, note), card=card
        )
    if job is not None and job.finished:
        phase, headline, detail = _outcome(t, job, attempt, protocol.driver_name)
        return PaymentPanel(number, amount, phase, headline, detail, can_pay=phase != "paid", card=card)
    if attempt is not None:
        return PaymentPanel(
            number,
            amount,
            "not_paid",
            _attempt_words(t, attempt, protocol.driver_name),
            can_pay=True,
            card=card,
        )
    return PaymentPanel(number, amount, "idle", t("pay.idle", amount=amount), can_pay=True)


def _attempt_words(t: Translator, a: PaymentAttempt, driver: str) -> str:
    """The last attempt's end, from the journal (after a restart there is no job to ask)."""
    state = AttemptState(a.state)
    if state is AttemptState.REFUSED:
        if a.name_check == "MISMATCH":
            return t("pay.done.refused", holder=a.cardholder_name or "—", driver=driver)
        return t("pay.done.refused_officer")
    if state is AttemptState.ABORTED or state is AttemptState.ABANDONED:
        return t("pay.done.cancelled")
    if state is AttemptState.CARD_FAILED:
        return (
            t("pay.done.no_card")
            if a.result_code == 0x6C
            else t("pay.done.card_failed", why=result_words(t, a.result_code))
        )
    if state in (AttemptState.DECLINED, AttemptState.FAILED):
        return t("pay.done.declined", why=result_words(t, a.result_code))
    return t("pay.done.not_charged")


def stop_state(s: Session, protocol: Protocol) -> str:
    """open | paid | declined | in_doubt, for the shift list."""
    if protocol.status == "paid":
        return "paid"
    unknown = s.scalar(
        select(PaymentAttempt.id)
        .where(
            PaymentAttempt.protocol_number == protocol.number,
            PaymentAttempt.state.in_([x.value for x in RESULT_UNKNOWN]),
        )
        .limit(1)
    )
    if unknown is not None:
        return "in_doubt"
    return "declined" if _latest_attempt(s, protocol.number) is not None else "open"


def shift_states(s: Session, protocols: list[Protocol]) -> dict[str, str]:
    """``stop_state`` of many protocols in two queries (the shift list)."""
    numbers = [p.number for p in protocols]
    tried = set(s.scalars(select(PaymentAttempt.protocol_number).where(PaymentAttempt.protocol_number.in_(numbers))))
    unknown = set(
        s.scalars(
            select(PaymentAttempt.protocol_number).where(
                PaymentAttempt.protocol_number.in_(numbers),
                PaymentAttempt.state.in_([x.value for x in RESULT_UNKNOWN]),
            )
        )
    )
    return {
        p.number: "paid" if p.status == "paid" else "in_doubt" if p.number in unknown else
        "declined" if p.number in tried else "open"
        for p in protocols
    }  # fmt: skip


def age_words(t: Translator, now: datetime, then: datetime) -> str:
    return t.age(now - then)
