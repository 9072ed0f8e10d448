"""Receipts of a payment: layout, print jobs with confirmation, paper-out recovery, duplicates, printer check."""
