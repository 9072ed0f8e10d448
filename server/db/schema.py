"""The server schema as one MetaData: imports every model module so Alembic and tests see all tables."""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData

import server.db
from server.db.base import Base

_NOT_MODELS = {"base", "schema", "migrate"}


def metadata() -> MetaData:
    for info in pkgutil.iter_modules(server.db.__path__):
        if info.name not in _NOT_MODELS:
            importlib.import_module(f"server.db.{info.name}")
    return Base.metadata
