"""The command line: wires library functions to files and exit codes, and holds no logic of its own."""

from symgrad.cli.app import main

__all__ = ["main"]
