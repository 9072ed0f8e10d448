"""The server database (PostgreSQL, or SQLite as the embedded default) through SQLAlchemy 2, one module per aggregate."""
