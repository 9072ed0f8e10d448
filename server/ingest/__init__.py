"""MQTT ingest of signed device records: verify, insert idempotently, ack after COMMIT, track gaps."""
