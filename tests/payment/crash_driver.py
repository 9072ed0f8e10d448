"""ECR process for the crash tests: pays one protocol and SIGKILLs itself at the named checkpoint."""

from __future__ import annotations

import os
import signal
import sys

from core.clock import SystemClock
from edge.db.base import make_engine, make_sessionmaker
from edge.payment.ports import CardRead, PrinterReadiness, Readiness
from edge.payment.workflow import PaymentWorkflow
from edge.payment.zvt_terminal import ZvtPaymentTerminal
from hardware.zvt.transport import SerialChannel


class Ready:
    def check(self) -> PrinterReadiness:
        return PrinterReadiness(Readiness.READY)


class Yes:
    def confirm_probable(self, driver_name: str, card: CardRead, reason: str) -> bool:
        return True

    def attest_unavailable(self, driver_name: str, card: CardRead) -> bool:
        return True


def main() -> None:
    db_url, terminal_path, kill_at, protocol = sys.argv[1:5]

    def checkpoint(name: str) -> None:
        if name == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    sessions = make_sessionmaker(make_engine(db_url))
    terminal = ZvtPaymentTerminal(SerialChannel(terminal_path), SystemClock())
    PaymentWorkflow(sessions, terminal, Ready(), Yes(), SystemClock(), "B-1", checkpoint=checkpoint).pay(
        protocol
    )


if __name__ == "__main__":
    main()
