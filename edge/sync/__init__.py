"""Offline-first sync of device records to the server: the outbox and its sender."""
