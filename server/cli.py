"""Entry point of `patrol-server`, the command line of the central server; subcommands live in `server.commands`."""

from __future__ import annotations

from collections.abc import Sequence

from core.cli_registry import build_parser, run
from server import commands


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser("patrol-server", "Command line of the central server.", commands), argv)


if __name__ == "__main__":
    raise SystemExit(main())
