"""The device database: SQLite in WAL mode through SQLAlchemy 2, one module per aggregate."""
