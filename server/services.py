"""Long-running parts of the server process (ingest workers and the like), each with one job, started by `run`."""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from server.config import ServerConfig


class Service(Protocol):
    def stop(self) -> None: ...


def start_services(config: ServerConfig, app: FastAPI) -> list[Service]:
    """Start every background service of the server; the caller stops them in reverse order."""
    services: list[Service] = []
    return services
