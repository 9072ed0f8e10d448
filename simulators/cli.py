"""Entry point of `patrol-sim`, the command line of the hardware simulators; subcommands live in `simulators.commands`."""

from __future__ import annotations

from collections.abc import Sequence

from core.cli_registry import build_parser, run
from simulators import commands


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser("patrol-sim", "Command line of the hardware simulators.", commands), argv)


if __name__ == "__main__":
    raise SystemExit(main())
