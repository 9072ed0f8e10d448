"""Packaged reference datasets (TOML): one jurisdiction per ``<code>.toml``, holidays in ``<code>_holidays.toml``."""
