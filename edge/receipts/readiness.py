"""``PrinterCheck`` on the real driver: the printer is asked (DLE EOT) before a payment may start."""

from __future__ import annotations

import logging

from core.structured_log import log_event
from edge.payment.ports import PrinterReadiness, Readiness
from edge.receipts.printing import ReceiptPrinterPort

log = logging.getLogger(__name__)


class DriverPrinterCheck:
    """Paper end, cover open, error or offline -> BLOCKED; near end or no status reply -> WARNING; else READY."""

    def __init__(self, printer: ReceiptPrinterPort) -> None:
        self.printer = printer

    def check(self) -> PrinterReadiness:
        status = self.printer.status()
        blocked = status.blocking_reason()
        if blocked:
            result = PrinterReadiness(Readiness.BLOCKED, blocked)
        else:
            warning = status.warning()
            result = (
                PrinterReadiness(Readiness.WARNING, warning) if warning else PrinterReadiness(Readiness.READY)
            )
        log_event(log, "printer.check", state=result.state.value, reason=result.reason, **status.as_dict())
        return result
