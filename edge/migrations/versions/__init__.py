"""Alembic revision files of the edge database (run with `upgrade heads`)."""
