"""Builds the printer driver, the receipt service and the printer check from the device configuration."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from edge.config import EdgeConfig
from edge.identity import DeviceIdentity
from edge.receipts.printing import ReceiptService
from edge.receipts.readiness import DriverPrinterCheck
from edge.receipts.settings import ReceiptSettings
from hardware.printer.driver import EscposPrinter
from hardware.printer.profiles import profile_by_name


def printer_from_config(config: EdgeConfig, clock: Clock) -> EscposPrinter:
    """The driver for ``[printer] url`` with ``[printer] profile`` (raises ValueError on an unknown profile)."""
    return EscposPrinter(config.printer.url, profile_by_name(config.printer.profile), clock)


def receipt_service_from_config(
    config: EdgeConfig,
    identity: DeviceIdentity,
    sessions: sessionmaker[Session],
    clock: Clock,
    printer: EscposPrinter | None = None,
) -> ReceiptService:
    """The receipt service; the QR points at ``[server] url`` + ``/r/<code>``."""
    settings = ReceiptSettings(verify_base_url=config.server.url)
    return ReceiptService(
        sessions,
        printer or printer_from_config(config, clock),
        identity,
        clock,
        settings,
        unit=config.device.unit,
    )


def printer_check_from_config(
    config: EdgeConfig, clock: Clock, printer: EscposPrinter | None = None
) -> DriverPrinterCheck:
    """The ``PrinterCheck`` the payment workflow asks before it takes a card."""
    return DriverPrinterCheck(printer or printer_from_config(config, clock))
