"""Subcommands of the simulators command line: every module here defines `register(subparsers)`."""
