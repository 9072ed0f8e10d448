"""The device schema as one MetaData: imports every model module so Alembic and tests see all tables."""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData

import edge.db
from edge.db.base import Base

_EXTRA_MODEL_MODULES = ("edge.sync.outbox",)
_NOT_MODELS = {"base", "schema", "migrate"}


def metadata() -> MetaData:
    for info in pkgutil.iter_modules(edge.db.__path__):
        if info.name not in _NOT_MODELS:
            importlib.import_module(f"edge.db.{info.name}")
    for name in _EXTRA_MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
