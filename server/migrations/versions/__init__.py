"""Alembic revision files of the server database (run with `upgrade heads`)."""
