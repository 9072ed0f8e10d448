"""Alembic migrations of the edge database."""
