"""The device's receipt data: ``ReceiptData`` (``core.receipt_layout``) from its persisted payment and protocol rows."""

from __future__ import annotations

from core.money import Money, currency
from core.receipt_layout import ReceiptData
from edge.db.payments import Payment
from edge.db.protocols import Protocol


def data_from_rows(payment: Payment, protocol: Protocol, officer_name: str, unit: str) -> ReceiptData:
    """Build ReceiptData from the persisted payment and protocol rows."""
    cur = currency(payment.currency)
    return ReceiptData(
        unit=unit,
        protocol_number=protocol.number,
        offence_at=protocol.offence_at,
        place=protocol.place,
        article=protocol.article,
        article_title=protocol.article_title,
        fine_units=protocol.fine_units,
        unit_value=Money(protocol.unit_value_minor, cur),
        unit_year=protocol.unit_year,
        full_amount=Money(payment.full_amount_minor, cur),
        legal_basis=protocol.legal_basis,
        amount_paid=Money(payment.amount_minor, cur),
        driver_name=protocol.driver_name,
        driver_iin=protocol.driver_iin,
        vehicle_plate=protocol.vehicle_plate,
        officer_name=officer_name,
        officer_badge=payment.officer_badge,
        device_id=protocol.device_id,
        card_scheme=payment.card_scheme,
        masked_pan=payment.masked_pan,
        cardholder_name=payment.cardholder_name,
        name_check=payment.name_check,
        auth_code=payment.auth_code,
        receipt_no=payment.receipt_no,
        trace_no=payment.trace_no,
        terminal_id=payment.terminal_id,
        terminal_time=payment.terminal_time,
        approved_at=payment.approved_at,
    )
