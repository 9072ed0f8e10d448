"""The patrol-device application: traffic stop, payment, receipts, recorder, uploader, outbox and sync."""
