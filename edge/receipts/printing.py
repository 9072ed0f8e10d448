"""Prints a payment's two copies as tracked jobs (PENDING -> SENT -> CONFIRMED | FAILED), with recovery and reprints.

Receipts are renderings of the persisted payment row: nothing here can start, repeat or change a payment. Every
job state change is committed together with its outbox record before the next step, so each attempt is logged
and queued for sync. The first print of a copy is the original; every later print of it is "ДУБЛИКАТ № k".
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Protocol as Interface

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.receipt_code import encode_receipt_code, receipt_url
from core.receipt_document import Document
from core.receipt_layout import CopySpec, ReceiptData, data_from_rows, render_copy
from core.structured_log import log_event
from edge.db.base import transaction
from edge.db.payments import Payment
from edge.db.protocols import Officer, Protocol
from edge.db.receipts import JobState, ReceiptJob
from edge.identity import DeviceIdentity
from edge.receipts.instructions import OfficerInstruction, instruction_for
from edge.receipts.settings import ReceiptSettings
from edge.sync.outbox import enqueue
from hardware.printer.driver import PrintOutcome
from hardware.printer.status import PrinterStatus

log = logging.getLogger(__name__)
OUTBOX_TYPE = "receipt_job"


class ReceiptPrinterPort(Interface):
    """What the service needs from a printer (hardware.printer.driver.EscposPrinter has it)."""

    def status(self) -> PrinterStatus: ...

    def print_document(self, doc: Document) -> PrintOutcome: ...


class ReceiptError(ValueError):
    """A receipt cannot be printed for this record (unknown payment or protocol, payment not approved)."""


@dataclass(frozen=True, slots=True)
class CopyResult:
    job_id: str
    copy_no: int
    duplicate_no: int
    state: JobState
    reason: str


@dataclass(frozen=True, slots=True)
class ReceiptRun:
    payment_id: str
    protocol_number: str
    results: tuple[CopyResult, ...]
    pending_copies: tuple[int, ...]  # copies with no CONFIRMED print yet
    instruction: OfficerInstruction | None

    @property
    def complete(self) -> bool:
        return not self.pending_copies


class ReceiptService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        printer: ReceiptPrinterPort,
        identity: DeviceIdentity,
        clock: Clock,
        settings: ReceiptSettings | None = None,
        unit: str = "",
    ) -> None:
        self.sessions = sessions
        self.printer = printer
        self.identity = identity
        self.clock = clock
        self.settings = settings or ReceiptSettings()
        self.unit = unit

    # -- queries ---------------------------------------------------------------------------------------
    def jobs(self, payment_id: str) -> list[ReceiptJob]:
        with self.sessions() as s:
            rows = s.scalars(
                select(ReceiptJob)
                .where(ReceiptJob.payment_id == payment_id)
                .order_by(ReceiptJob.created_at, ReceiptJob.copy_no, ReceiptJob.duplicate_no)
            )
            return list(rows)

    def pending_copies(self, payment_id: str) -> tuple[int, ...]:
        with self.sessions() as s:
            done = set(
                s.scalars(
                    select(ReceiptJob.copy_no).where(
                        ReceiptJob.payment_id == payment_id, ReceiptJob.state == JobState.CONFIRMED.value
                    )
                )
            )
        return tuple(c for c in self.settings.copy_order if c not in done)

    def payment_for_protocol(self, protocol_number: str) -> str:
        with self.sessions() as s:
            pid = s.scalar(select(Payment.id).where(Payment.protocol_number == protocol_number))
        if pid is None:
            raise ReceiptError(f"no payment recorded for protocol {protocol_number!r}")
        return pid

    # -- printing --------------------------------------------------------------------------------------
    def print_receipts(self, payment_id: str) -> ReceiptRun:
        """Print every copy not yet confirmed, in the configured order; stop at the first failure.

        Right after the payment this prints the two originals; after a paper change it prints the missing
        copies as numbered duplicates."""
        results: list[CopyResult] = []
        for copy_no in self.pending_copies(payment_id):
            result = self.print_copy(payment_id, copy_no)
            results.append(result)
            if result.state is JobState.FAILED:
                break
        return self._run(payment_id, results)

    def reprint(self, protocol_number: str, copy_no: int) -> ReceiptRun:
        """A numbered duplicate of one copy, at any time (the officer's "reprint")."""
        payment_id = self.payment_for_protocol(protocol_number)
        return self._run(payment_id, [self.print_copy(payment_id, copy_no)])

    def _run(self, payment_id: str, results: list[CopyResult]) -> ReceiptRun:
        pending = self.pending_copies(payment_id)
        failed = [r for r in results if r.state is JobState.FAILED]
        instruction = instruction_for(failed[-1].reason, list(pending)) if failed else None
        with self.sessions() as s:
            number = s.scalar(select(Payment.protocol_number).where(Payment.id == payment_id)) or ""
        return ReceiptRun(payment_id, number, tuple(results), pending, instruction)

    def _load(self, session: Session, payment_id: str) -> ReceiptData:
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise ReceiptError(f"no payment {payment_id!r}")
        if payment.status != "approved":
            raise ReceiptError(f"payment {payment_id} is {payment.status}, not approved: no receipt")
        protocol = session.get(Protocol, payment.protocol_number)
        if protocol is None:
            raise ReceiptError(
                f"payment {payment_id} refers to a missing protocol {payment.protocol_number!r}"
            )
        officer = session.get(Officer, payment.officer_badge)
        unit = self.unit or (officer.unit if officer else "")
        return data_from_rows(
            payment, protocol, officer.full_name if officer else payment.officer_badge, unit
        )

    def spec(self, data: ReceiptData, copy_no: int, duplicate_no: int) -> tuple[CopySpec, str]:
        """How this copy is printed now, and the signed verification code its QR carries."""
        code = encode_receipt_code(data.claim(), self.identity.private_key)
        mask = self.settings.mask_iin_driver_copy if copy_no == 1 else self.settings.mask_iin_protocol_copy
        spec = CopySpec(
            copy_no=copy_no,
            duplicate_no=duplicate_no,
            printed_at=self.clock.now(),
            mask_iin=mask,
            verify_url=receipt_url(self.settings.verify_base_url, code),
            timezone=self.settings.timezone,
            software_version=self.settings.software_version,
        )
        return spec, code

    def document(self, data: ReceiptData, copy_no: int, duplicate_no: int) -> Document:
        return render_copy(data, self.spec(data, copy_no, duplicate_no)[0])

    def preview(self, payment_id: str, copy_no: int) -> Document:
        """Copy ``copy_no`` as the printer gets it (the original's lines; a duplicate adds its own)."""
        if copy_no not in (1, 2):
            raise ReceiptError(f"copy must be 1 or 2, got {copy_no}")
        with self.sessions() as s:
            data = self._load(s, payment_id)
        return self.document(data, copy_no, 0)

    def print_copy(self, payment_id: str, copy_no: int) -> CopyResult:
        """One attempt at one copy: a new job row, a status check, the job, and its outcome, each committed."""
        if copy_no not in (1, 2):
            raise ReceiptError(f"copy must be 1 or 2, got {copy_no}")
        job_id = str(uuid.uuid4())
        with transaction(self.sessions) as s:
            data = self._load(s, payment_id)
            last = s.scalar(
                select(func.max(ReceiptJob.duplicate_no)).where(
                    ReceiptJob.payment_id == payment_id, ReceiptJob.copy_no == copy_no
                )
            )
            duplicate_no = 0 if last is None else last + 1
            now = self.clock.now()
            job = ReceiptJob(
                id=job_id,
                payment_id=payment_id,
                protocol_number=data.protocol_number,
                copy_no=copy_no,
                duplicate_no=duplicate_no,
                state=JobState.PENDING.value,
                reason="",
                printer_status="",
                bytes_sent=0,
                created_at=now,
                updated_at=now,
            )
            spec, code = self.spec(data, copy_no, duplicate_no)
            printed = {
                "duplicate_no": duplicate_no,
                "verify_code": code,
                "mask_iin": spec.mask_iin,
                "timezone": spec.timezone,
                "unit": data.unit,
                "software_version": spec.software_version,
            }  # receipt_job v2: what it takes to render this very copy again (the evidence export)
            s.add(job)
            self._event(s, job, printed)
        doc = render_copy(data, spec)
        status = self.printer.status()
        blocked = status.blocking_reason()
        if blocked:
            return self._finish(job_id, JobState.FAILED, f"{blocked} (not sent)", status, 0, printed)
        self._finish(job_id, JobState.SENT, "", status, 0, printed)
        outcome = self.printer.print_document(doc)
        if outcome.confirmed is True:
            state = JobState.CONFIRMED
        elif outcome.confirmed is False:
            state = JobState.FAILED
        else:
            state = JobState.SENT
        return self._finish(job_id, state, outcome.reason, outcome.status, outcome.bytes_sent, printed)

    def _finish(
        self,
        job_id: str,
        state: JobState,
        reason: str,
        status: PrinterStatus,
        sent: int,
        printed: dict[str, object],
    ) -> CopyResult:
        with transaction(self.sessions) as s:
            job = s.get(ReceiptJob, job_id)
            assert job is not None
            job.state = state.value
            job.reason = reason
            job.printer_status = json.dumps(status.as_dict(), sort_keys=True)
            job.bytes_sent = sent
            job.updated_at = self.clock.now()
            self._event(s, job, printed)
            result = CopyResult(job.id, job.copy_no, job.duplicate_no, state, reason)
        return result

    def _event(self, session: Session, job: ReceiptJob, printed: dict[str, object]) -> None:
        """Queue the job's new state for sync (core.sync.records.ReceiptJobRecordV2) in the caller's
        transaction; ``printed`` is how the copy is printed (duplicate number, QR code, masking, zone …)."""
        detail = {
            "state": job.state,
            "duplicate_no": job.duplicate_no,
            "reason": job.reason[:200],
            "bytes_sent": job.bytes_sent,
            "printer": json.loads(job.printer_status) if job.printer_status else None,
        }
        body = {
            "job_id": job.id,
            "payment_id": job.payment_id,
            "protocol_number": job.protocol_number,
            "copy_no": job.copy_no,
            "event": _EVENTS[JobState(job.state)]
            if job.duplicate_no == 0 or job.state != JobState.PENDING.value
            else "reprint_requested",
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True)[:500],
            "occurred_at": self.clock.now(),
            **printed,
        }
        enqueue(session, OUTBOX_TYPE, body, now=self.clock.now())
        log_event(
            log,
            "receipt.job",
            job_id=job.id,
            protocol_number=job.protocol_number,
            copy_no=job.copy_no,
            duplicate_no=job.duplicate_no,
            state=job.state,
            reason=job.reason,
        )


_EVENTS = {
    JobState.PENDING: "queued",
    JobState.SENT: "printing",
    JobState.CONFIRMED: "printed",
    JobState.FAILED: "failed",
}
