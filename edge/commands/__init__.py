"""Subcommands of the edge command line: every module here defines `register(subparsers)`."""
