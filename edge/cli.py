"""Entry point of `patrol-edge`, the command line of the patrol device; subcommands live in `edge.commands`."""

from __future__ import annotations

from collections.abc import Sequence

from core.cli_registry import build_parser, run
from edge import commands


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser("patrol-edge", "Command line of the patrol device.", commands), argv)


if __name__ == "__main__":
    raise SystemExit(main())
