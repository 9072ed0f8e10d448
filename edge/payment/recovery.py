"""Recovery: what the terminal itself says about attempts whose result is unknown, and what that settles.

An attempt's result is unknown when the line, the terminal or the process died between the Authorisation
(06 01) and the acknowledgement of its result: it is left authorising or result-saved by a crash, or in doubt.
Such an attempt blocks only its own protocol; the terminal is the authority on money, and nothing is guessed.
Evidence, in order (``edge.payment.settlement`` records how each attempt was settled):

1. **Repeat Receipt** (06 20, ``reconcile``): the terminal's last receipt. It can speak only about the
   device's latest transaction on the terminal (any later one would be the last receipt instead):
   - an approval not yet recorded, same amount and currency, same card (1F14), same trace if one was saved,
     not older than the attempt → charged: the payment is recorded once;
   - a reversal of that amount (of that trace if one was saved) → reversed, not charged;
   - an approval the device already recorded for an earlier payment → the attempt made no booking: not charged;
   - anything else (no last receipt, a stranger's transaction, 84 83 "not supported") → still in doubt.
2. **A result the terminal sends unsolicited** (``take_stray``): after the line comes back a terminal may
   send the unanswered 04 0F again. It is saved first; if it matches exactly one attempt in doubt by the
   same rules it settles it (and only then is it acknowledged); the result of a payment recorded already
   (our acknowledgement was lost) is acknowledged again; anything else is refused and kept as evidence.
3. **End-of-Day** (06 50, ``end_of_day``): the totals of the batch the terminal closed (total, count,
   receipt range) against the device's recorded payments in that batch; if exactly one choice of the
   attempts in doubt makes both the total and the count agree, those were charged and the others not.
4. Otherwise the attempt stays in doubt until a person decides (``settlement.decide``).

The device is assumed to be the only ECR of its terminal (one terminal per patrol device).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.structured_log import log_event
from core.terminal_time import terminal_local_time
from edge.db.base import transaction
from edge.db.payment_attempts import PaymentAttempt, PaymentEvidence
from edge.db.payments import Payment
from edge.payment.attempt_states import RESULT_UNKNOWN, AttemptState
from edge.payment.attempts import AttemptJournal, AttemptView
from edge.payment.events import StateChanged
from edge.payment.ports import (
    PaymentTerminal,
    TerminalRefused,
    TerminalResult,
    TerminalTotals,
    TerminalUnreachable,
)
from edge.payment.settlement import Settled, settle_in

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=15)  # how far the terminal's clock may be off the device's
MAX_EOD_CANDIDATES = 12  # attempts in doubt that one End-of-Day may weigh against each other (2^12 choices)


@dataclass
class Reconciled:
    """What one round of recovery found."""

    settled: list[Settled] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)  # attempt ids still in doubt
    evidence: str = ""


def _unknown_rows(s: Session) -> list[PaymentAttempt]:
    q = select(PaymentAttempt).where(PaymentAttempt.state.in_([x.value for x in RESULT_UNKNOWN]))
    return list(s.scalars(q.order_by(PaymentAttempt.started_at)))


def _recorded(s: Session, result: TerminalResult) -> Payment | None:
    """The device's payment with this result's trace or receipt number, if it recorded one."""
    if result.trace_no is not None:
        hit = s.scalar(select(Payment).where(Payment.trace_no == str(result.trace_no)))
        if hit is not None:
            return hit
    if result.receipt_no is not None:
        return s.scalar(select(Payment).where(Payment.receipt_no == str(result.receipt_no)))
    return None


def _learnt(row: PaymentAttempt, why: str) -> None:
    """Add what was learnt to the reason of an attempt still in doubt (what the officer is shown)."""
    if why not in row.reason:
        row.reason = f"{row.reason}; {why}"[-2000:] if row.reason else why


class Recovery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        terminal: PaymentTerminal | None,
        clock: Clock,
        journal: AttemptJournal,
        timezone: str = "Asia/Almaty",
    ) -> None:
        self.sessions = sessions
        self.terminal = terminal
        self.clock = clock
        self.journal = journal
        self.timezone = timezone
        self.live: str | None = None  # the attempt this process is authorising: its result is not stray

    # ------------------------------------------------------------------ matching
    def _belongs(self, row: PaymentAttempt, r: TerminalResult) -> bool:
        """Is ``r`` this attempt's own result: amount, card, trace and time agree?"""
        if r.amount_minor != row.amount_minor:
            return False
        if row.card_hash and r.card_hash and r.card_hash != row.card_hash:
            return False
        if row.trace_no is not None and r.trace_no != row.trace_no and r.original_trace != row.trace_no:
            return False
        at = (
            terminal_local_time(r.terminal_time, self.clock.now(), self.timezone) if r.terminal_time else None
        )
        start = row.authorised_at or row.started_at
        return at is None or start - CLOCK_SKEW <= at <= self.clock.now() + CLOCK_SKEW

    def _verdict(self, s: Session, row: PaymentAttempt, r: TerminalResult) -> tuple[bool | None, str]:
        """(charged?, why) from the terminal's last transaction; None = it does not tell."""
        known = _recorded(s, r) if not r.is_reversal else None
        if r.approved and known is not None:
            return False, (
                f"the terminal's last transaction is payment {known.id} (trace {known.trace_no}) recorded "
                "earlier: nothing was booked after it"
            )
        if r.approved and self._belongs(row, r):
            return (
                True,
                f"the terminal booked trace {r.trace_no}, receipt {r.receipt_no}, {r.amount_minor} minor units",
            )
        if r.is_reversal and r.amount_minor == row.amount_minor:
            reversed_known = s.scalar(select(Payment).where(Payment.trace_no == str(r.original_trace)))
            if reversed_known is None and (row.trace_no is None or r.original_trace == row.trace_no):
                return (
                    False,
                    f"the terminal reversed trace {r.original_trace} (no acknowledgement reached it)",
                )
        return None, (
            f"the terminal's last transaction (trace {r.trace_no}, result code {r.result_code}, "
            f"{r.amount_minor} minor units) is not this attempt's"
        )

    # ------------------------------------------------------------------ evidence 1: Repeat Receipt
    def reconcile(self) -> Reconciled:
        """Close attempts a dead process left before its Authorisation; ask the terminal's last receipt
        about the device's latest transaction; every other attempt whose result is unknown is in doubt."""
        out = Reconciled()
        self._abandon_unfinished()
        with self.sessions() as s:
            pending = [r.id for r in _unknown_rows(s)]
            latest = s.scalar(
                select(PaymentAttempt.id)
                .where(PaymentAttempt.authorised_at.is_not(None))
                .order_by(PaymentAttempt.authorised_at.desc())
                .limit(1)
            )
        if not pending:
            return out
        for attempt_id in pending:
            if attempt_id != latest:
                self._to_doubt(
                    attempt_id,
                    "the terminal has processed a later payment since: its last receipt cannot settle this one; "
                    "settle it by end-of-day or a decision",
                )
        if latest in pending and self.terminal is not None:
            self._ask_last_receipt(latest, out)
        elif latest in pending:
            self._to_doubt(latest, "no terminal to ask")
        with self.sessions() as s:
            out.in_doubt = [r.id for r in _unknown_rows(s)]
        return out

    def _ask_last_receipt(self, attempt_id: str, out: Reconciled) -> None:
        assert self.terminal is not None
        events: list[StateChanged] = []

        def judge(r: TerminalResult) -> bool:
            with transaction(self.sessions) as s:
                row = s.get(PaymentAttempt, attempt_id)
                assert row is not None
                charged, why = self._verdict(s, row, r)
                s.add(self._evidence("repeat_receipt", why, attempt_id, r.raw_hex))
                if charged is None or AttemptState(row.state) not in RESULT_UNKNOWN:
                    if AttemptState(row.state) in RESULT_UNKNOWN:
                        _learnt(row, why)
                    if AttemptState(row.state) in (AttemptState.AUTHORISING, AttemptState.RESULT_PERSISTED):
                        events.append(self.journal.move_in(s, row, AttemptState.IN_DOUBT, why))
                    out.evidence = why
                    return True  # a copy of a receipt: acknowledging it books nothing new
                reversed_ = r.is_reversal
                settled, event = settle_in(
                    s,
                    self.journal,
                    row,
                    charged=charged,
                    method="repeat_receipt",
                    evidence=why,
                    evidence_hex=r.raw_hex,
                    result=r if charged else None,
                    not_charged_state=AttemptState.REVERSED if reversed_ else AttemptState.NOT_CHARGED,
                    now=self.clock.now(),
                )
                out.settled.append(settled)
                out.evidence = why
                events.append(event)
            return True

        try:
            last = self.terminal.repeat_receipt(judge)
            if last is None:
                self._to_doubt(attempt_id, "the terminal has no last receipt to repeat", evidence=True)
        except TerminalRefused as exc:
            self._to_doubt(attempt_id, f"the terminal refused Repeat Receipt: {exc}", evidence=True)
        except TerminalUnreachable as exc:
            self._to_doubt(
                attempt_id,
                f"Repeat Receipt could not be asked, the terminal is unreachable: {exc}",
                evidence=True,
            )
        self.journal.publish(*events)
        log_event(
            log, "payment.reconcile", attempt=attempt_id, settled=bool(out.settled), evidence=out.evidence
        )

    def _abandon_unfinished(self) -> None:
        for a in self.journal.before_authorisation():
            self.journal.move(
                a.id,
                AttemptState.ABANDONED,
                "the process ended before the authorisation",
                reason="abandoned: the process ended before the authorisation; nothing was sent to charge",
            )

    def _to_doubt(self, attempt_id: str, why: str, evidence: bool = False) -> None:
        events: list[StateChanged] = []
        with transaction(self.sessions) as s:
            row = s.get(PaymentAttempt, attempt_id)
            assert row is not None
            if evidence and why not in row.reason:  # the same answer again teaches nothing new
                s.add(self._evidence("repeat_receipt", why, attempt_id))
            _learnt(row, why)
            if AttemptState(row.state) in (AttemptState.AUTHORISING, AttemptState.RESULT_PERSISTED):
                events.append(self.journal.move_in(s, row, AttemptState.IN_DOUBT, why))
        self.journal.publish(*events)

    def _evidence(self, kind: str, summary: str, attempt_id: str | None, raw_hex: str = "", answer: str = "",
                  totals: TerminalTotals | None = None) -> PaymentEvidence:  # fmt: skip
        return PaymentEvidence(
            at=self.clock.now(),
            kind=kind,
            attempt_id=attempt_id,
            summary=summary[:4000],
            raw_hex=raw_hex,
            answer=answer,
            total_minor=totals.total_minor if totals else None,
            count=totals.count if totals else None,
            receipt_from=totals.receipt_from if totals else None,
            receipt_to=totals.receipt_to if totals else None,
        )

    # ------------------------------------------------------------------ evidence 2: a stray result
    def take_stray(self, r: TerminalResult) -> bool:
        """A result the terminal sent unsolicited: saved, and settles the one attempt it belongs to; True
        (acknowledge) only then. Installed as the terminal's ``on_stray_result``."""
        events: list[StateChanged] = []
        with transaction(self.sessions) as s:
            known = _recorded(s, r)
            if known is not None and r.approved and r.amount_minor == known.amount_minor:
                # the result of a payment recorded already, sent again (our 80 00 was lost): it is saved, so
                # it is acknowledged again; refusing it would make the terminal reverse a recorded payment
                why = f"the result of payment {known.id} (trace {known.trace_no}) again, recorded already"
                s.add(self._evidence("stray_result", why, None, r.raw_hex, "accepted"))
                log_event(log, "payment.stray_result", verdict="repeat", payment=known.id)
                return True
            rows = [row for row in _unknown_rows(s) if row.authorised_at is not None and row.id != self.live]
            mine = [row for row in rows if self._belongs(row, r)] if known is None else []
            if len(mine) != 1:
                why = (
                    "a result nobody asked for, matching no attempt in doubt: refused, the terminal reverses it"
                    if not mine
                    else f"a result nobody asked for, matching {len(mine)} attempts in doubt: refused"
                )
                s.add(self._evidence("stray_result", why, None, r.raw_hex, "refused"))
                log_event(log, "payment.stray_result", verdict="refused", trace=r.trace_no, matches=len(mine))
                return False
            row = mine[0]
            charged = r.approved
            why = (
                f"the terminal sent the result after the line came back: trace {r.trace_no}, receipt "
                f"{r.receipt_no}, result code {r.result_code}"
            )
            s.add(self._evidence("stray_result", why, row.id, r.raw_hex, "accepted"))
            if AttemptState(row.state) is AttemptState.AUTHORISING and charged:
                # commit the result the way the workflow would have, then record the payment
                row.result_hex, row.result_code = r.raw_hex, r.result_code
                row.trace_no, row.receipt_no = r.trace_no, r.receipt_no
            _settled, event = settle_in(
                s,
                self.journal,
                row,
                charged=charged,
                method="terminal_result",
                evidence=why,
                evidence_hex=r.raw_hex,
                result=r if charged else None,
                not_charged_state=AttemptState.REVERSED if r.is_reversal else AttemptState.NOT_CHARGED,
                now=self.clock.now(),
            )
            events.append(event)
        self.journal.publish(*events)
        log_event(log, "payment.stray_result", verdict="accepted", attempt=row.id, charged=charged)
        return True

    # ------------------------------------------------------------------ evidence 3: End-of-Day
    def end_of_day(self) -> Reconciled:
        """Run End-of-Day on the terminal and settle what its totals prove (before they are acknowledged)."""
        if self.terminal is None:
            raise TerminalUnreachable("no terminal configured")
        out = Reconciled()
        events: list[StateChanged] = []

        def weigh(t: TerminalTotals) -> bool:
            with transaction(self.sessions) as s:
                why, verdicts = self._weigh(s, t)
                s.add(self._evidence("end_of_day", why, None, t.raw_hex, totals=t))
                out.evidence = why
                for row, charged in verdicts:
                    settled, event = settle_in(
                        s, self.journal, row, charged=charged, method="end_of_day", evidence=why,
                        evidence_hex=t.raw_hex, now=self.clock.now(),
                    )  # fmt: skip
                    out.settled.append(settled)
                    events.append(event)
            return True

        self.terminal.end_of_day(weigh)
        self.journal.publish(*events)
        with self.sessions() as s:
            out.in_doubt = [r.id for r in _unknown_rows(s)]
        log_event(log, "payment.end_of_day", settled=len(out.settled), in_doubt=len(out.in_doubt))
        return out

    def _weigh(self, s: Session, t: TerminalTotals) -> tuple[str, list[tuple[PaymentAttempt, bool]]]:
        previous = s.scalar(
            select(PaymentEvidence.at)
            .where(PaymentEvidence.kind == "end_of_day")
            .order_by(PaymentEvidence.id.desc())
            .limit(1)
        )
        since = "" if previous is None else f" since the end-of-day of {previous:%Y-%m-%d %H:%M}Z"

        def in_batch(row: PaymentAttempt) -> bool:
            return row.authorised_at is not None and (previous is None or row.authorised_at > previous)

        paid = [
            r
            for r in s.scalars(select(PaymentAttempt).where(PaymentAttempt.state == AttemptState.PAID.value))
            if in_batch(r)
        ]
        rng = (
            (t.receipt_from, t.receipt_to)
            if t.receipt_from is not None and t.receipt_to is not None
            else None
        )
        head = (
            f"end-of-day: the terminal booked {t.total_minor} minor units in "
            f"{'an unknown number of' if t.count is None else t.count} transaction(s)"
            f"{f', receipts {rng[0]}–{rng[1]}' if rng else ''}"
        )
        outside = [
            r for r in paid if rng and r.receipt_no is not None and not rng[0] <= r.receipt_no <= rng[1]
        ]
        if previous is None and rng:
            paid = [r for r in paid if r.receipt_no is None or rng[0] <= r.receipt_no <= rng[1]]
            outside = []
        doubt = [r for r in _unknown_rows(s) if in_batch(r)]
        recorded = sum(r.amount_minor for r in paid)
        head += f"; the device recorded {recorded} in {len(paid)} payment(s){since}"
        if outside:
            return (
                f"{head}; payments the device recorded (receipts {', '.join(str(r.receipt_no) for r in outside)}) "
                "are not in this batch: it was closed elsewhere, nothing can be concluded",
                [],
            )
        if not doubt:
            return f"{head}; no attempt in doubt", []
        if len(doubt) > MAX_EOD_CANDIDATES:
            return f"{head}; {len(doubt)} attempts in doubt are too many to weigh", []
        want_amount = t.total_minor - recorded
        want_count = None if t.count is None else t.count - len(paid)
        fits = [
            set(chosen)
            for k in range(len(doubt) + 1)
            if want_count is None or k == want_count
            for chosen in itertools.combinations(range(len(doubt)), k)
            if sum(doubt[i].amount_minor for i in chosen) == want_amount
        ]
        names = ", ".join(f"{r.id[:8]} ({r.amount_minor})" for r in doubt)
        if len(fits) != 1:
            return (
                f"{head}; attempts in doubt {names}: "
                f"{'no' if not fits else len(fits)} way(s) to make the totals agree, nothing can be concluded",
                [],
            )
        charged = fits[0]
        return (
            f"{head}; of the attempts in doubt {names} exactly one choice makes the totals agree: "
            f"charged {', '.join(doubt[i].id[:8] for i in sorted(charged)) or 'none'}",
            [(r, i in charged) for i, r in enumerate(doubt)],
        )

    # ------------------------------------------------------------------ queries
    def in_doubt(self, protocol_number: str | None = None) -> list[AttemptView]:
        return self.journal.result_unknown(protocol_number)
