"""Builds a command line from a package of subcommand modules, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def build_parser(prog: str, description: str, package: ModuleType) -> argparse.ArgumentParser:
    """Parser whose subcommands come from every module of ``package`` that has a ``register`` function."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="TOML configuration file (environment variables override it)")
    parser.add_argument(
        "--log-level",
        default=None,
        help="DEBUG, INFO, WARNING or ERROR (default INFO; WARNING for commands an officer reads, such as pay)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        register: Any = getattr(module, "register", None)
        if callable(register):
            register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and call the chosen subcommand's handler (set with ``set_defaults(handler=...)``)."""
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    import logging

    from core.process_stop import end_with_parent
    from core.structured_log import configure_logging

    configure_logging(args.log_level or getattr(args, "log_level_default", "INFO"))
    end_with_parent(logging.getLogger(parser.prog))
    return int(handler(args) or 0)
