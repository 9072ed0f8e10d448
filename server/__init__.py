"""The central server: MQTT ingest, HTTP API, video store, database and supervisor web UI."""
