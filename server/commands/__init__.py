"""Subcommands of the server command line: every module here defines `register(subparsers)`."""
